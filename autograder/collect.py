"""Collecting a class: a folder of learners' folders, or an LMS zip, copied into
autograder/submitted/<student_id>/<assignment>/ (the threat model, autograder/THREATS.md:
submission files -> collector).

Everything in a batch may have been chosen by a learner who read this code: file and folder
names, links, archives inside it, sizes, a zip's own headers. So:

- whose files are whose comes only from a name at the batch's top level (:data:`NAMINGS`): a
  learner's folder, or a file named as the LMS names them. A path inside a learner's folder never
  decides it, and archives inside the batch are never unpacked;
- a student id is checked (:func:`student_problem`) before any path is built from it;
- only regular files are copied, each under a name that stays in its learner's folder: no links
  (never followed, in a folder or a zip), no devices, nothing past the limits below;
- one bad file costs only that file: it is listed with the reason and the batch goes on;
- of several submissions of one file by one learner, the newest (by what the LMS gives: see
  :func:`_newer`) is collected and the others are listed; a name becomes a student id through
  the roster, else :func:`folder_id` (letters of any script, apostrophes and spaces folded into
  a safe folder name).

What was not collected comes back as ``refused``: a label a teacher can read (made safe with
:func:`autograder.plain.line`) -> why, in one sentence.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol

from autograder import plain

if TYPE_CHECKING:
    from autograder.roster import Roster

#: The largest file collected.
MAX_SUBMISSION_BYTES = 50 << 20
#: All of one learner's files together, and how many there may be.
MAX_LEARNER_BYTES = 100 << 20
MAX_LEARNER_FILES = 500
#: A zip with more members is not a class's download: it is refused whole.
MAX_MEMBERS = 200_000
#: A zip member inflating more than this many times, to more than RATIO_FLOOR, is a zip bomb.
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20
#: Archives are never unpacked: a learner hands in their notebook, not a bundle of files.
ARCHIVES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz", ".tbz2", ".xz", ".txz", ".zst",
            ".lz", ".lzma", ".z", ".7z", ".rar", ".cab", ".jar", ".war", ".iso", ".dmg")
#: Names Windows keeps for devices: a folder of that name cannot be copied there.
WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(1, 10)),
                   *(f"lpt{n}" for n in range(1, 10))}
CHUNK = 1 << 20


class CourseFolders(Protocol):
    """What collecting needs of a course (autograder.grade.Course has it)."""

    work: Path          # autograder/ (submitted/ is in it)
    assignment: str

    def folder(self, kind: str, student: str) -> Path: ...

    def notebooks(self) -> list[str]: ...


class Refused(Exception):
    """Why one name of the batch is not collected, in a sentence a teacher understands."""


# --- who a top-level name is -------------------------------------------------------------------

@dataclass(frozen=True)
class Naming:
    """One way a batch names a learner at its top level. ``pattern`` is matched against the
    whole name of a top-level entry of ``kind`` ("folder" or "file"). Its groups: ``who``, the
    learner as the LMS writes them (a login, a name); ``key``, the LMS's own id of the learner
    where it gives one (it, not the name, tells two learners apart); ``file``, for a file, the
    name the learner gave it. ``order`` makes, from the match, what orders one learner's
    submissions of one file (a larger one is newer), ``when`` the submission's time where the
    name holds it."""

    lms: str
    kind: str
    pattern: re.Pattern
    order: Callable[[re.Match], tuple] = lambda match: ()
    when: Callable[[re.Match], datetime | None] = lambda match: None


def _strptime(form: str) -> Callable[[re.Match], datetime | None]:
    def when(match: re.Match) -> datetime | None:
        try:
            return datetime.strptime(match["date"], form)
        except ValueError:
            return None
    return when


_BLACKBOARD_TIME = _strptime("%Y-%m-%d-%H-%M-%S")
_BRIGHTSPACE_TIME = _strptime("%b %d, %Y %I%M %p")
_BRIGHTSPACE = (r"(?P<submission>\d+)-(?P<sequence>\d+) - (?P<who>[^/]+?) - "
                r"(?P<date>[A-Z][a-z]{2} \d{1,2}, \d{4} \d{3,4} [AP]M)")
_FLAGS = re.IGNORECASE | re.DOTALL


def _brightspace_order(match: re.Match) -> tuple:
    return (_BRIGHTSPACE_TIME(match) or datetime.min, int(match["submission"]))


#: How learners are named at a batch's top level, tried in order (the first that matches).
#: Each LMS's format as its own code or documentation gives it:
#:
#: - Canvas (``submissions_controller`` / its submissions zip): ``<lastfirst>[_LATE]_<user
#:   id>_<attachment id>_<original name>``; the name part is the learner's sortable name
#:   lower-cased with non-word characters dropped (apostrophes vanish, Unicode letters stay);
#:   a file name the learner used before comes back as ``<name>-1.ipynb``; a text entry is
#:   ``<lastfirst>_<user id>_text.html``; anonymous grading puts ``anon_<id>`` for the user id.
#:   A resubmission has a larger attachment id; ``LATE`` marks one after the due date.
#: - Moodle (mod/assign's ``download_submissions``): the prefix is ``clean_filename(<full
#:   name, _ read as a space>_<participant id>)``, then ``_assignsubmission_file_``; since 3.1
#:   as a folder per learner (``<prefix>_assignsubmission_file_/<file>``, the default), before
#:   as a flat file ``<prefix>_assignsubmission_file_<file>``. Blind marking writes
#:   ``Participant`` for the name. The participant id is the assignment's own, so a learner is
#:   known across assignments by their name (or a roster). One submission per learner.
#: - Blackboard Learn (Grade Centre, "Assignment File Download"):
#:   ``<assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<original name>``, and a
#:   ``<assignment>_<username>_attempt_<time>.txt`` of the submission's details.
#: - Brightspace (D2L, "Download" of a folder's submissions): a folder per submission,
#:   ``<submission id>-<sequence> - <First Last> - <Mon D, YYYY HHMM AM>/<file>`` (the older
#:   form is the same as one flat file, `` - <file>`` after the date), and a top-level
#:   ``index.html``. Brightspace gives no learner id: the name, mapped through a roster.
#: - A learner's folder, ``<student_id>/...`` (a teacher's download, nbgrader's exchange), and
#:   the generic ``<student_id>_<anything_><notebook>.ipynb``.
NAMINGS = [
    Naming("moodle", "folder", re.compile(
        r"(?P<who>[^_]+)_(?P<key>\d+)_assignsubmission_[a-z]+_", _FLAGS)),
    Naming("brightspace", "folder", re.compile(_BRIGHTSPACE, _FLAGS), _brightspace_order,
           _BRIGHTSPACE_TIME),
    Naming("folder", "folder", re.compile(r"(?P<who>.+)", re.DOTALL)),
    Naming("canvas", "file", re.compile(
        r"(?P<who>[^_]+)(?P<late>_LATE)?_(?P<key>\d+|anon_\d+)_(?P<attachment>\d+)_"
        r"(?P<file>.+)", re.DOTALL),
        lambda match: (bool(match["late"]), int(match["attachment"]))),
    Naming("canvas", "file", re.compile(
        r"(?P<who>[^_]+)(?P<late>_LATE)?_(?P<key>\d+|anon_\d+)_(?P<file>text\.html)")),
    Naming("moodle", "file", re.compile(
        r"(?P<who>[^_]+)_(?P<key>\d+)_assignsubmission_[a-z]+_(?P<file>.+)", _FLAGS)),
    Naming("blackboard", "file", re.compile(
        r"(?P<assignment>.+)_(?P<who>[^_]+)_attempt_"
        r"(?P<date>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:_(?P<file>.+)|(?P<details>\.txt))",
        re.DOTALL), lambda match: (match["date"],), _BLACKBOARD_TIME),
    Naming("brightspace", "file", re.compile(_BRIGHTSPACE + r" - (?P<file>.+)", _FLAGS),
           _brightspace_order, _BRIGHTSPACE_TIME),
    Naming("generic", "file", re.compile(r"(?P<who>[^_]+)_(?P<file>.+\.ipynb)", _FLAGS)),
]
#: The formats ``LMS=...`` may choose (the learner's folder is always read).
LMSES = sorted({naming.lms for naming in NAMINGS} - {"folder"})

NO_ID = ("no student id in the file name: a learner's files go in a folder named by their "
         "student id, or are named as the LMS names them (<student_id>_..._<notebook>.ipynb)")
#: Top-level files an LMS adds beside the learners' files.
LMS_FILES = {"index.html": "Brightspace's index of the download, not a learner's"}


@dataclass(frozen=True)
class Person:
    """A learner as a batch names them: the format, the name and the LMS's id (if any)."""

    lms: str
    who: str
    key: str | None = None


@dataclass(frozen=True)
class Found:
    """What a top-level name says: whose, and for a file its name in the learner's folder,
    how it orders among that learner's submissions of it, and when it was handed in."""

    person: Person
    file: str | None = None
    order: tuple = ()
    when: datetime | None = None


def _plain_name(name: str) -> str:
    """A name compared with the assignment's: case, and _ against -, do not matter."""
    return name.lower().replace("_", "-")


def identify(name: str, kind: str, course: CourseFolders, lms: str | None = None) -> Found:
    """Whose a top-level entry is (by the first row of :data:`NAMINGS` of its kind that
    matches, of the ``lms`` only if given); Refused where it names no learner."""
    if name in ("__MACOSX", ".DS_Store"):
        raise Refused("macOS's metadata (the Finder adds it when it compresses), not a learner's")
    if kind == "file" and name in LMS_FILES:
        raise Refused(LMS_FILES[name])
    for naming in NAMINGS:
        if naming.kind != kind or lms not in (None, naming.lms) and naming.lms != "folder":
            continue
        if match := naming.pattern.fullmatch(name):
            break
    else:
        raise Refused(NO_ID if kind == "file" else "not a learner's folder")
    who = match["who"]
    if naming.lms == "generic" and _is_notebook_name(name, who, course):
        raise Refused(f"{NO_ID}; it is the notebook's own name")
    if problem := who_problem(who):
        raise Refused(problem)
    person = Person(naming.lms, who, match.groupdict().get("key"))
    if kind == "folder":
        return Found(person, order=naming.order(match), when=naming.when(match))
    file, copy = _lms_file(match["file"] or f"{naming.lms}-details.txt", course)
    return Found(person, file, (*naming.order(match), copy), naming.when(match))


def _is_notebook_name(name: str, student: str, course: CourseFolders) -> bool:
    """Whether the text before the first ``_`` is part of a notebook's name, not an id: the
    file's name starts with a notebook's name, longer than that text (conv2d_numpy.ipynb)."""
    stem = _plain_name(PurePosixPath(name).stem)
    return any(stem.startswith(_plain_name(notebook)) and len(notebook) > len(student)
               for notebook in course.notebooks())


#: A copy's mark an LMS or a browser adds to a file name used before: ``-1``, `` (2)``.
_COPY = re.compile(r"(?:-(\d+)| \((\d+)\))$")


def notebook_copy(name: str, course: CourseFolders) -> tuple[str, int] | None:
    """The assignment's notebook a file name is, and its copy number (0: the name itself,
    ``conv2d_numpy.ipynb``; 1: ``conv2d-numpy-1.ipynb``, ``conv2d-numpy (1).ipynb``); None
    where it is none of them."""
    path = PurePosixPath(name)
    if path.suffix.lower() != ".ipynb":
        return None
    mark = _COPY.search(path.stem)
    for notebook in course.notebooks():
        if _plain_name(path.stem) == _plain_name(notebook):
            return f"{notebook}.ipynb", 0
        if mark and _plain_name(path.stem[:mark.start()]) == _plain_name(notebook):
            return f"{notebook}.ipynb", int(mark[1] or mark[2])
    return None


def _lms_file(rest: str, course: CourseFolders) -> tuple[str, int]:
    """The name an LMS file gets in its learner's folder, and its copy number: the
    assignment's notebook where the text after a ``_`` is its name, a copy's mark aside
    (``12_34_conv2d_numpy-1.ipynb``), else the text after the id."""
    parts = rest.split("_")
    for start in range(len(parts) - 1, -1, -1):
        if found := notebook_copy("_".join(parts[start:]), course):
            return found
    return rest, 0


# --- student ids ---------------------------------------------------------------------------------

#: A student id as it becomes a folder: ASCII letters, digits and _.@+-, starting with a
#: letter or digit (matched whole, so no trailing newline).
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
#: What a name may hold where the LMS writes one: letters of any script, marks, digits,
#: spaces, apostrophes and _.@+-, starting with a letter or digit.
_WHO_PUNCTUATION = set(" '\u2019_.@+-,")
#: Scripts whose letters look like Latin ones: an id mixing them is a look-alike.
_LOOK_ALIKE = {"CYRILLIC", "GREEK"}
#: Latin letters that do not decompose into an ASCII letter and a mark.
_FOLD = {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
         "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d", "ı": "i"}
UNUSABLE = ("not a usable student id (letters, digits, spaces, apostrophes and _.@+- only, "
            "starting with a letter or digit, one script, at most 100)")


def who_problem(who: str) -> str | None:
    """Why ``who`` (a learner's folder's name, or the name part of an LMS file) cannot name a
    learner (None: it can)."""
    if not who or len(who) > 100 or not who[0].isalnum():
        return UNUSABLE
    scripts = set()
    for char in who:
        category = unicodedata.category(char)
        if category[0] == "L":
            scripts.add(unicodedata.name(char, "?").split()[0])
        elif category[0] != "M" and category != "Nd" and char not in _WHO_PUNCTUATION:
            return UNUSABLE
    if "LATIN" in scripts and scripts & _LOOK_ALIKE:
        return UNUSABLE
    return None


def folder_id(who: str) -> str:
    """The student id a name becomes: its letters folded to ASCII (``Müller`` -> ``Muller``,
    ``Łukasz`` -> ``Lukasz``), spaces and commas as ``-``, apostrophes dropped; a name with
    letters that have no ASCII form (王芳) is written as IDNA writes one (``xn--...``)."""
    text = unicodedata.normalize("NFC", who.strip())
    text = re.sub(r"[ ,]+", "-", text).replace("'", "").replace("\u2019", "")
    folded = "".join(_FOLD.get(char, char) for char in unicodedata.normalize("NFKD", text)
                     if unicodedata.category(char)[0] != "M")
    if folded.isascii():
        return folded
    return "xn--" + text.encode("punycode").decode("ascii")


def student_problem(student: str, course: CourseFolders) -> str | None:
    """Why ``student`` cannot be a student id here (None: it can): checked before any path is
    built from it."""
    if not STUDENT_ID.fullmatch(student) or student in (".", ".."):
        return UNUSABLE
    if student.split(".")[0].lower() in WINDOWS_DEVICES:
        return "a name Windows reserves for a device: not a usable student id"
    if _plain_name(student) in {_plain_name(n) for n in [course.assignment,
                                                         *course.notebooks()]}:
        return "the assignment's or a notebook's name, not a student id"
    base = (course.work / "submitted").resolve()
    target = course.folder("submitted", student).resolve()
    if not target.is_relative_to(base) or target == base:
        return "a student id whose folder would lie outside autograder/submitted/"
    return None


def student_ids(people: list[Person], roster: Roster | None = None) -> dict[Person, str]:
    """Each learner's student id: the roster's, where it knows them (by the LMS's id, else by
    name); else their name as a folder (:func:`folder_id`), with the LMS's id added where
    two learners of one name have different LMS ids."""
    ids = {}
    for person in people:
        found = roster.find(person.key, person.who) if roster is not None else None
        ids[person] = found.student_id if found is not None else folder_id(person.who)
    keys: dict[str, set] = {}
    for person, student in ids.items():
        keys.setdefault(student, set()).add(person.key)
    for person, student in ids.items():
        if len(keys[student] - {None}) > 1 and (roster is None or
                                               roster.find(person.key, person.who) is None):
            ids[person] = f"{student}-{folder_id(person.key)}"
    return ids


def name_problem(part: str) -> str | None:
    """Why one part of a path inside a learner's folder cannot be a name there (None: it can):
    it must keep the file in that folder, on any system the folder is copied to. Any other
    text is the learner's to choose: whoever shows it makes it plain (autograder/plain.py)."""
    if part in ("", ".", ".."):
        return "its path leads outside the learner's folder (an empty, . or .. part)"
    if "\\" in part:
        return "its name holds a backslash, which Windows reads as a folder"
    if len(part.encode()) > 255:
        return "its name is longer than 255 bytes"
    return None


def path_problem(parts: list[str] | tuple[str, ...]) -> str | None:
    """Why a file's path inside a learner's folder cannot be collected (None: it can)."""
    for part in parts:
        if problem := name_problem(part):
            return problem
    if parts[-1].lower().endswith(ARCHIVES):
        return "an archive: archives in a batch are never unpacked (hand in the notebook itself)"
    return None


# --- what is collected -------------------------------------------------------------------------

@dataclass
class File:
    """A file of the batch to collect: whose, where in their folder, and how to read it."""

    label: str                          # where it is in the batch, as the teacher reads it
    path: PurePosixPath                 # where it goes in the learner's folder
    size: int                           # as declared (a zip's header) or found (lstat)
    open: Callable[[], IO[bytes]]
    lms: bool = False                   # named at the top level, not in a learner's folder
    naming: str = "folder"              # the format that named it (orders compare within one)
    order: tuple = ()                   # among one learner's files of one name: larger, newer
    when: datetime | None = None        # when it was handed in, where the batch says
    index: int = 0                      # its place in the batch


@dataclass
class Batch:
    """What was found in a batch: each learner's files in the batch's order, and what not."""

    course: CourseFolders
    lms: str | None = None
    learners: dict[Person, list[File]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    beyond: dict[Person, int] = field(default_factory=dict)  # files not even kept in memory
    tops: dict[tuple[str, str], Found | None] = field(default_factory=dict)
    count: int = 0
    roster: Roster | None = None
    collected: Collected | None = None

    def refuse(self, label: str, why: str) -> None:
        label = plain.line(label)
        if self.refused.get(label, why) != why:  # two names shown alike, for different reasons
            label = next(f"{label} ({n})" for n in range(2, 10 ** 6)
                         if f"{label} ({n})" not in self.refused)
        self.refused[label] = why

    def learner(self, top: str, kind: str) -> Found | None:
        """Whose a top-level entry is (None, and listed, where it names no one); once per
        name, however many members lie under it."""
        if (top, kind) not in self.tops:
            try:
                found = identify(top, kind, self.course, self.lms)
                self.learners.setdefault(found.person, [])
            except Refused as why:
                self.refuse(top, str(why))
                found = None
            self.tops[top, kind] = found
        return self.tops[top, kind]

    def add(self, person: Person, file: File) -> None:
        """A learner's file; past ten times what a learner may hand in, only counted."""
        files = self.learners.setdefault(person, [])
        self.count += 1
        file.index = self.count
        if len(files) < 10 * MAX_LEARNER_FILES:
            files.append(file)
        else:
            self.beyond[person] = self.beyond.get(person, 0) + 1


# --- a folder of learners' folders ---------------------------------------------------------------

def collect_folder(batch: Batch, submissions: Path) -> None:
    """A folder batch: each learner's folder walked without following a link."""
    for entry in sorted(submissions.iterdir(), key=lambda path: path.name):
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            batch.refuse(entry.name, "a link, not a learner's folder: links are never followed")
        elif stat.S_ISDIR(mode):
            if (found := batch.learner(entry.name, "folder")) is not None:
                _walk(batch, found, entry)
        elif stat.S_ISREG(mode):
            _top_file(batch, entry.name, entry.lstat().st_size, lambda e=entry: _open_plain(e))
        else:
            batch.refuse(entry.name, "not a regular file or folder (a device, pipe or socket)")


def _walk(batch: Batch, found: Found, top: Path) -> None:
    def unreadable(error: OSError) -> None:
        batch.refuse(str(Path(error.filename).relative_to(top.parent)),
                     f"could not be read ({error.strerror})")

    for directory, folders, names in os.walk(top, onerror=unreadable):
        here = Path(directory)
        for name in sorted(folders):
            label = str((here / name).relative_to(top.parent))
            if (here / name).is_symlink():
                batch.refuse(label, "a link: links are never followed (it could lead to another "
                                    "learner's work or the solutions)")
                folders.remove(name)
            elif problem := name_problem(name):
                batch.refuse(label + "/", problem)
                folders.remove(name)
        folders.sort()
        for name in sorted(names):
            path = here / name
            inside = path.relative_to(top)
            _folder_file(batch, found, path, str(path.relative_to(top.parent)), inside)


def _folder_file(batch: Batch, found: Found, path: Path, label: str, inside: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        batch.refuse(label, "a link: links are never followed (it could lead to another "
                            "learner's work or the solutions)")
    elif not stat.S_ISREG(info.st_mode):
        batch.refuse(label, "not a regular file (a device, pipe or socket)")
    elif problem := path_problem([path.name]):
        batch.refuse(label, problem)
    else:
        _learners_file(batch, found, label, PurePosixPath(inside.as_posix()), info.st_size,
                       lambda: _open_plain(path), info.st_mtime)


def _learners_file(batch: Batch, found: Found, label: str, path: PurePosixPath, size: int,
                   opener: Callable[[], IO[bytes]], mtime: float) -> None:
    """A file in a learner's folder. A copy of a notebook (``conv2d-numpy (1).ipynb``) is
    that notebook, ordered by its file time (the newest is graded) where the format gives no
    order of its own."""
    order = found.order
    if copy := notebook_copy(path.name, batch.course):
        path = path.with_name(copy[0])
        order = order or (mtime, copy[1])
    batch.add(found.person, File(label, path, size, opener, naming=found.person.lms,
                                 order=order, when=found.when))


def _open_plain(path: Path) -> IO[bytes]:
    """A regular file opened for reading, never through a link, never blocking on a pipe."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise Refused("not a regular file (a device, pipe or socket)")
    return os.fdopen(descriptor, "rb")


def _top_file(batch: Batch, name: str, size: int, opener: Callable[[], IO[bytes]]) -> None:
    """A file at the batch's top level: the LMS's naming says whose, or it is nobody's."""
    try:
        found = identify(name, "file", batch.course, batch.lms)
        if problem := path_problem([found.file]):
            raise Refused(problem)
    except Refused as why:
        batch.refuse(name, str(why))
        return
    batch.add(found.person, File(name, PurePosixPath(found.file), size, opener, lms=True,
                                 naming=found.person.lms, order=found.order, when=found.when))


# --- an LMS zip --------------------------------------------------------------------------------

def collect_zip(batch: Batch, archive: Path) -> Collected:
    """An LMS zip, read member by member with Python's zipfile, never unpacked as a whole (nor
    by nbgrader's zip_collect, which reads identity anywhere in a path and unpacks archives in
    it). A member's time is when the zip was made, not when the learner handed it in: it
    orders only copies of a notebook in a learner's folder (a teacher's own zip)."""
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise SystemExit(f"grade: {archive} is not a zip file that can be read ({error})") \
            from None
    with bundle:
        members = bundle.infolist()
        if len(members) > MAX_MEMBERS:
            raise SystemExit(f"grade: {archive} has {len(members)} members, more than any "
                             f"class's download ({MAX_MEMBERS}): not collected")
        for info in members:
            _member(batch, bundle, info)
        copy_all(batch)
        return batch.collected


def _member(batch: Batch, bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """One member: its learner from the top-level part of its name, then listed with the
    reason or added to that learner's files (a folder entry only names its learner)."""
    name = info.filename
    if name.startswith("/"):
        batch.refuse(name, "an absolute path, outside the batch")
        return
    parts = name.rstrip("/").split("/")
    if len(parts) == 1 and not info.is_dir():
        if problem := _member_problem(info):
            batch.refuse(name, problem)
        else:
            _top_file(batch, name, info.file_size, lambda: bundle.open(info))
        return
    found = batch.learner(parts[0], "folder")
    if found is None or len(parts) == 1:
        return
    if problem := _member_problem(info) or (None if info.is_dir() else path_problem(parts[1:])):
        batch.refuse(name, problem)
    elif not info.is_dir():
        _learners_file(batch, found, name, PurePosixPath(*parts[1:]), info.file_size,
                       lambda: bundle.open(info), datetime(*info.date_time).timestamp())


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is not collected, from its headers alone (None: read it)."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return ("a link: links are never followed (it could lead to another learner's work or "
                "the solutions)")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "not a regular file (a device, pipe or socket)"
    if info.flag_bits & 0x1:
        return "encrypted: it cannot be read without its password"
    if info.file_size > MAX_SUBMISSION_BYTES:
        return f"larger than {MAX_SUBMISSION_BYTES >> 20} MB ({info.file_size >> 20} MB declared)"
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"compressed more than {MAX_RATIO} times ({info.compress_size} bytes for "
                f"{info.file_size >> 20} MB): a zip bomb, or not a notebook")
    return None


# --- choosing and copying each learner's files ------------------------------------------------

def _this_assignment(files: list[File], assignment: str) -> list[File]:
    """nbgrader's layout, <student>/<assignment>/...: where a learner's folder has files in a
    folder named as the assignment (a real one: a link is never walked), those files, moved up,
    and the LMS files; the rest is other assignments'. Else every file."""
    def inside(file: File) -> bool:
        return not file.lms and len(file.path.parts) > 1 and file.path.parts[0] == assignment

    if not any(inside(file) for file in files):
        return files
    return [replace(f, path=PurePosixPath(*f.path.parts[1:])) if inside(f) else f
            for f in files if inside(f) or f.lms]


def _newer(file: File, than: File) -> bool:
    """Whether ``file`` is a newer submission than ``than``, of one learner and one name: by
    what the LMS gives (LATE, the attachment id, a copy's number, the attempt's time) where
    one format named both, else the later in the batch."""
    if file.naming == than.naming and file.order != than.order:
        return file.order > than.order
    return file.index > than.index


def chosen(batch: Batch, person: Person, student: str) -> list[File]:
    """The files a learner hands in for this assignment (:func:`_this_assignment`); of two
    with the same name, the newer (:func:`_newer`), the other listed; at most
    MAX_LEARNER_FILES."""
    files = _this_assignment(batch.learners[person], batch.course.assignment)
    kept: dict[PurePosixPath, File] = {}
    for file in files:
        if (other := kept.get(file.path)) is not None:
            newer, older = (file, other) if _newer(file, other) else (other, file)
            by_order = newer.naming == older.naming and newer.order != older.order
            batch.refuse(older.label, (
                f"an older submission of {student}: the newer one, "
                f"{plain.line(newer.label)}, was graded" if by_order else
                f"another file of the same name for this learner, later in the batch, was "
                f"kept ({plain.line(newer.label)})"))
            file = newer
        kept[file.path] = file
    files = list(kept.values())
    beyond = len(files) - MAX_LEARNER_FILES + batch.beyond.get(person, 0)
    if beyond > 0:
        batch.refuse(student, f"{beyond} files beyond the first "
                              f"{MAX_LEARNER_FILES} were not collected: a learner hands in at "
                              f"most {MAX_LEARNER_FILES}")
    return files[:MAX_LEARNER_FILES]


def learner_folder(course: CourseFolders, student: str) -> Path:
    """The learner's folder in submitted/, emptied: checked to lie inside submitted/, never a
    link, before anything in it is removed."""
    if problem := student_problem(student, course):
        raise Refused(problem)
    target = course.folder("submitted", student)
    if target.is_symlink() or target.parent.is_symlink():
        raise Refused("its folder in autograder/submitted/ is a link: not replaced")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target


#: nbgrader's record of when a submission was handed in, in its submitted folder.
TIMESTAMP = "timestamp.txt"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def submitted_time(folder: Path) -> datetime | None:
    """The time in a submitted folder's timestamp.txt (None: none, or unreadable)."""
    path = folder / TIMESTAMP
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return datetime.strptime(path.read_text()[:40].strip()[:19], TIME_FORMAT)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def copy_learner(batch: Batch, person: Person, student: str) -> bool:
    """Copy a learner's chosen files into submitted/ with the time they were handed in (the
    newest file's, where the batch gives times); whether the learner was collected. A
    submission older than the one collected before (a download made earlier) is listed, and
    the newer one kept."""
    files = chosen(batch, person, student)
    times = [file.when for file in files if file.when is not None]
    when = max(times) if times else None
    try:
        if problem := student_problem(student, batch.course):
            raise Refused(problem)
        before = submitted_time(batch.course.folder("submitted", student))
        if when is not None and before is not None and when < before:
            for file in files:
                batch.refuse(file.label, f"older than {student}'s submission collected before "
                                         f"(handed in {before:{TIME_FORMAT}}), which is kept")
            return True
        target = learner_folder(batch.course, student)
    except Refused as why:
        for label in _top_labels(files) or [student]:
            batch.refuse(label, str(why))
        return False
    budget = MAX_LEARNER_BYTES
    for file in files:
        if file.path == PurePosixPath(TIMESTAMP) and when is not None:
            batch.refuse(file.label, f"{TIMESTAMP} is where the grader records when the "
                                     "submission was handed in")
            continue
        try:
            budget -= copy_file(file, target, budget)
        except Refused as why:
            batch.refuse(file.label, str(why))
    if when is not None:
        (target / TIMESTAMP).write_text(f"{when:{TIME_FORMAT}}\n")
    return True


def copy_file(file: File, target: Path, budget: int) -> int:
    """Copy one file, reading no more than the limits allow; the bytes written."""
    limit = min(MAX_SUBMISSION_BYTES, budget)
    if file.size > limit:
        raise Refused(_too_large(limit))
    destination = target.joinpath(*file.path.parts)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644)
    except OSError:
        raise Refused("a file and a folder of the same name: the later was not collected") \
            from None
    try:
        with os.fdopen(descriptor, "wb") as out, file.open() as source:
            return _copy_bounded(source, out, limit)
    except Refused:
        destination.unlink(missing_ok=True)
        raise
    except (OSError, EOFError, RuntimeError, NotImplementedError, ValueError, zlib.error,
            zipfile.BadZipFile) as error:
        destination.unlink(missing_ok=True)
        raise Refused(f"could not be read ({type(error).__name__}: "
                      f"{plain.line(error, 120)})") from None


def _copy_bounded(source: IO[bytes], out: IO[bytes], limit: int) -> int:
    written = 0
    for chunk in _chunks(source):
        written += len(chunk)
        if written > limit:
            raise Refused(_too_large(limit))
        out.write(chunk)
    return written


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def _too_large(limit: int) -> str:
    if limit >= MAX_SUBMISSION_BYTES:
        return f"larger than {MAX_SUBMISSION_BYTES >> 20} MB"
    return (f"larger than what is left of the learner's {MAX_LEARNER_BYTES >> 20} MB "
            f"(their files together)")


# --- the batch -----------------------------------------------------------------------------------

@dataclass
class Collected:
    """What collecting a batch found: the students collected, what was not (a label -> why),
    and for each student the learner as the batch named them."""

    students: list[str]
    refused: dict[str, str]
    people: dict[str, Person] = field(default_factory=dict)

    def __iter__(self):  # students, refused = collect(...)
        return iter((self.students, self.refused))

    def __getitem__(self, index: int):
        return (self.students, self.refused)[index]


def collect(course: CourseFolders, submissions: Path, *, lms: str | None = None,
            roster: Roster | None = None) -> Collected:
    """Copy the batch into autograder/submitted/; the learners found, and what was not
    collected (a label -> why). ``lms`` reads the top-level names as that LMS names them only
    (else each as the first format it matches); ``roster`` maps names to student ids."""
    if lms is not None and lms not in LMSES:
        raise SystemExit(f"grade: LMS={lms!r} is none of {', '.join(LMSES)}")
    if submissions.is_file() and submissions.suffix.lower() == ".zip":
        return collect_zip(Batch(course, lms, roster=roster), submissions)
    if not submissions.is_dir():
        raise SystemExit(f"grade: {submissions} is neither a folder of learners' folders nor a "
                         ".zip file")
    submitted = (course.work / "submitted").resolve()
    if submissions.resolve() == submitted:
        return already_submitted(course)
    if submitted.is_relative_to(submissions.resolve()) or \
            submissions.resolve().is_relative_to(submitted):
        raise SystemExit(f"grade: {submissions} holds, or lies in, the grader's own "
                         f"{submitted}: give the folder of learners' folders")
    batch = Batch(course, lms, roster=roster)
    collect_folder(batch, submissions)
    copy_all(batch)
    return batch.collected


def _top_labels(files: list[File]) -> list[str]:
    """The batch's own top-level names of a learner's files (an LMS file, a folder)."""
    return list(dict.fromkeys(f.label if f.lms else f.label.split("/")[0] for f in files))


def copy_all(batch: Batch) -> None:
    """Copy every learner found, under their student id (:func:`student_ids`). Two people of
    the batch are one learner where the batch names them alike (a folder and an LMS file) or
    the roster makes them one; two names that only fold into one id (``o'brien``, ``obrien``)
    are not: the later is listed, not collected."""
    ids = student_ids(list(batch.learners), batch.roster)
    people: dict[str, Person] = {}
    for person in list(batch.learners):
        student = ids[person]
        if student not in people:
            people[student] = person
        elif people[student].who == person.who or (
                batch.roster is not None and batch.roster.find(person.key, person.who)):
            batch.learners[people[student]] += batch.learners.pop(person)
        else:
            for label in _top_labels(batch.learners.pop(person)):
                batch.refuse(label, f"its name becomes the student id of another learner of "
                                    f"the batch, {student} ({plain.line(people[student].who)})"
                                    f": give one of them another name, or a roster")
    batch.collected = Collected([], batch.refused)
    for student, person in sorted(people.items()):
        if copy_learner(batch, person, student):
            batch.collected.students.append(student)
            batch.collected.people[student] = person


def already_submitted(course: CourseFolders) -> Collected:
    """nbgrader's own layout, already in autograder/submitted/: its learners, not copied."""
    students, refused = [], {}
    for folder in sorted((course.work / "submitted").iterdir()):
        if folder.is_symlink() or not folder.is_dir():
            refused[plain.line(folder.name)] = "not a learner's folder (a link, or a file)"
        elif problem := student_problem(folder.name, course):
            refused[plain.line(folder.name)] = problem
        elif (folder / course.assignment).is_dir() and \
                not (folder / course.assignment).is_symlink():
            students.append(folder.name)
    return Collected(students, refused, {s: Person("folder", s) for s in students})
