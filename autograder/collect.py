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
  :func:`_newer`) is collected and the others are listed, in one batch and across batches
  (downloads made at different times, graded in any order: :func:`copy_learner`, which
  keeps the collector's own record beside each learner's folder); a name becomes a student
  id through the roster, else :func:`folder_id` (letters of any script, apostrophes and
  spaces folded into a safe folder name).

What was not collected comes back as ``refused``: a label a teacher can read (made safe with
:func:`autograder.plain.line`) -> why, in one sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
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
#: What reading a file of a batch may raise (a zip member unlike what its headers say, ...).
READ_ERRORS = (OSError, EOFError, RuntimeError, NotImplementedError, ValueError, zlib.error,
               zipfile.BadZipFile)


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
    submissions of one file (a larger one is newer), in this download and in any other of the
    same LMS; ``when`` the submission's time where the name holds it. Where a format gives no
    order, the file's time does (:func:`file_order`)."""

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
#:   Ids come from one sequence for the whole Canvas instance, so a resubmission has a larger
#:   attachment id than the file it replaces, in any download; ``LATE`` (after the due date as
#:   it stood when the zip was made: an extension can lift it) only breaks a tie. (Canvas's
#:   ``content_zipper`` lower-cases the whole prefix in some versions: ``_late`` is read too.)
#: - Moodle (mod/assign's ``download_submissions``): the prefix is ``clean_filename(<full
#:   name, _ read as a space>_<participant id>)``, then ``_assignsubmission_file_``; since 3.1
#:   as a folder per learner (``<prefix>_assignsubmission_file_/<file>``, the default), before
#:   as a flat file ``<prefix>_assignsubmission_file_<file>``. Blind marking writes
#:   ``Participant`` for the name. The participant id is the assignment's own, so a learner is
#:   known across assignments by their name (or a roster). One submission per learner.
#: - Blackboard Learn (Grade Centre, "Assignment File Download"):
#:   ``<assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<original name>``, and a
#:   ``<assignment>_<username>_attempt_<time>.txt`` of the submission's details. Read from the
#:   left: the learner's file name comes last and may itself hold ``_<name>_attempt_<time>``.
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
        r"(?P<who>[^_]+)(?P<late>_LATE|_late)?_(?P<key>\d+|anon_\d+)_(?P<attachment>\d+)_"
        r"(?P<file>.+)", re.DOTALL),
        lambda match: (int(match["attachment"]), bool(match["late"]))),
    Naming("canvas", "file", re.compile(
        r"(?P<who>[^_]+)(?P<late>_LATE|_late)?_(?P<key>\d+|anon_\d+)_(?P<file>text\.html)")),
    Naming("moodle", "file", re.compile(
        r"(?P<who>[^_]+)_(?P<key>\d+)_assignsubmission_[a-z]+_(?P<file>.+)", _FLAGS)),
    Naming("blackboard", "file", re.compile(
        r"(?P<assignment>.+?)_(?P<who>[^_]+)_attempt_"
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
    how it orders among that learner's submissions of it (the format's order, then its copy
    number), and when it was handed in."""

    person: Person
    file: str | None = None
    order: tuple = ()
    when: datetime | None = None
    copy: int = 0


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
    return Found(person, file, naming.order(match), naming.when(match), copy)


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
    name: str = ""                      # the batch's own name (its zip's or folder's)

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
        info = entry.lstat()
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            batch.refuse(entry.name, "a link, not a learner's folder: links are never followed")
        elif stat.S_ISDIR(mode):
            if (found := batch.learner(entry.name, "folder")) is not None:
                _walk(batch, found, entry)
        elif stat.S_ISREG(mode):
            _top_file(batch, entry.name, info.st_size, lambda e=entry: _open_plain(e),
                      info.st_mtime)
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


def file_order(found: Found, mtime: float, copy: int) -> tuple:
    """How a file orders among its learner's submissions of it: by its format's own order
    where the name gives one, else by its file time, then by its copy number. A zip member's
    time is when the LMS made the zip: it orders nothing inside one download, but a later
    download holds each learner's newest submission as of then, so its copy is the newer."""
    return (*(found.order or (mtime,)), copy)


def _learners_file(batch: Batch, found: Found, label: str, path: PurePosixPath, size: int,
                   opener: Callable[[], IO[bytes]], mtime: float) -> None:
    """A file in a learner's folder. A copy of a notebook (``conv2d-numpy (1).ipynb``) is
    that notebook (:func:`file_order` says which is the newest)."""
    copy = 0
    if found_copy := notebook_copy(path.name, batch.course):
        path, copy = path.with_name(found_copy[0]), found_copy[1]
    batch.add(found.person, File(label, path, size, opener, naming=found.person.lms,
                                 order=file_order(found, mtime, copy), when=found.when))


def _open_plain(path: Path) -> IO[bytes]:
    """A regular file opened for reading, never through a link, never blocking on a pipe."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise Refused("not a regular file (a device, pipe or socket)")
    return os.fdopen(descriptor, "rb")


def _top_file(batch: Batch, name: str, size: int, opener: Callable[[], IO[bytes]],
              mtime: float) -> None:
    """A file at the batch's top level: the LMS's naming says whose, or it is nobody's."""
    try:
        found = identify(name, "file", batch.course, batch.lms)
        if problem := path_problem([found.file]):
            raise Refused(problem)
    except Refused as why:
        batch.refuse(name, str(why))
        return
    batch.add(found.person, File(name, PurePosixPath(found.file), size, opener, lms=True,
                                 naming=found.person.lms,
                                 order=file_order(found, mtime, found.copy), when=found.when))


# --- an LMS zip --------------------------------------------------------------------------------

def collect_zip(batch: Batch, archive: Path) -> Collected:
    """An LMS zip, read member by member with Python's zipfile, never unpacked as a whole (nor
    by nbgrader's zip_collect, which reads identity anywhere in a path and unpacks archives in
    it). A member's time is when the zip was made, not when the learner handed it in: it
    orders a learner's files only where the LMS's name gives no order (:func:`file_order`)."""
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
            _top_file(batch, name, info.file_size, lambda: bundle.open(info), _zip_time(info))
        return
    found = batch.learner(parts[0], "folder")
    if found is None or len(parts) == 1:
        return
    if problem := _member_problem(info) or (None if info.is_dir() else path_problem(parts[1:])):
        batch.refuse(name, problem)
    elif not info.is_dir():
        _learners_file(batch, found, name, PurePosixPath(*parts[1:]), info.file_size,
                       lambda: bundle.open(info), _zip_time(info))


def _zip_time(info: zipfile.ZipInfo) -> float:
    """A member's time as its header gives it (0: a date that is none, month 0 or day 31 of
    February, as a forged header may hold)."""
    try:
        return datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return 0.0


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
    what the LMS gives (the attachment id, LATE, the attempt's time, a file time, a copy's
    number: :func:`file_order`) where one format named both, else the later in the batch."""
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
    """The learner's folder in submitted/ (made where there is none yet): checked to lie
    inside submitted/ and to be no link, before anything is written in it."""
    if problem := student_problem(student, course):
        raise Refused(problem)
    target = course.folder("submitted", student)
    if target.is_symlink() or target.parent.is_symlink() or \
            target.exists() and not target.is_dir():
        raise Refused("its folder in autograder/submitted/ is a link or a file: not replaced")
    target.mkdir(parents=True, exist_ok=True)
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


# --- downloads made at different times: what was collected before ------------------------------

#: The collector's record of a learner's folder lies beside it, where no learner's file can
#: land (theirs go inside the folder): submitted/<student>/<assignment>.collected.json.
RECORD_SUFFIX = ".collected.json"
MAX_RECORD_BYTES = 4 << 20


@dataclass(frozen=True)
class Recorded:
    """A file the collector put in a learner's folder, as its record keeps it: the format
    that named it and its order there (:func:`plain_order`), when it was handed in (where the
    batch said), its label in its batch, that batch's name, and its digest."""

    naming: str
    order: list
    when: str | None
    label: str
    batch: str
    sha256: str

    def usable(self) -> bool:
        """Whether the record's entry is one the collector could have written."""
        text = (self.naming, self.label, self.batch, self.sha256)
        return all(isinstance(value, str) for value in text) and \
            isinstance(self.order, list) and bool(self.order) and \
            all(isinstance(v, (int, float, str)) and not isinstance(v, bool)
                for v in self.order) and (self.when is None or _is_time(self.when))


def _is_time(text: object) -> bool:
    try:
        return isinstance(text, str) and bool(datetime.strptime(text, TIME_FORMAT))
    except ValueError:
        return False


def record_path(course: CourseFolders, student: str) -> Path:
    folder = course.folder("submitted", student)
    return folder.with_name(folder.name + RECORD_SUFFIX)


def plain_order(order: tuple) -> list:
    """A file's order as the record keeps it (JSON): times as ISO text, a flag as 0 or 1."""
    return [value.isoformat() if isinstance(value, datetime) else
            int(value) if isinstance(value, bool) else value for value in order]


def _digest(opener: Callable[[], IO[bytes]]) -> str | None:
    """The SHA-256 of what ``opener`` gives to read (None: it cannot be read, or it is longer
    than a file may be)."""
    digest, read = hashlib.sha256(), 0
    try:
        with opener() as source:
            for chunk in _chunks(source):
                read += len(chunk)
                if read > MAX_SUBMISSION_BYTES:
                    return None
                digest.update(chunk)
    except (Refused, *READ_ERRORS):
        return None
    return digest.hexdigest()


def _file_digest(path: Path) -> str | None:
    return _digest(lambda: _open_plain(path))


def collected_before(course: CourseFolders, student: str) -> dict[PurePosixPath, Recorded]:
    """The files the collector put in a learner's folder from earlier batches, as its record
    says: only those still there as recorded (their digest); none where there is no record or
    it cannot be read. Only the collector writes it: nothing a learner wrote is read here."""
    path = record_path(course, student)
    try:
        if path.is_symlink() or path.stat().st_size > MAX_RECORD_BYTES:
            return {}
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        entries = {PurePosixPath(name): Recorded(**entry) for name, entry in files.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    folder = course.folder("submitted", student)

    def holds(name: PurePosixPath, entry: Recorded) -> bool:
        return (entry.usable() and bool(name.parts) and not name.is_absolute()
                and path_problem(name.parts) is None
                and _file_digest(folder.joinpath(*name.parts)) == entry.sha256)

    return {name: entry for name, entry in entries.items() if holds(name, entry)}


def _write_record(course: CourseFolders, student: str,
                  files: dict[PurePosixPath, Recorded]) -> None:
    path = record_path(course, student)
    text = json.dumps({"files": {name.as_posix(): vars(entry) for name, entry in
                                 sorted(files.items())}}, indent=1)
    descriptor, part = tempfile.mkstemp(dir=path.parent, prefix=".collecting-")
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(part, path)


def _age(file: File, before: Recorded) -> int | None:
    """How a file of this batch compares with the one collected before in its place: 1 newer,
    -1 older, 0 the same submission (by the order of the one format that named both, else by
    the times both batches gave); None where nothing orders them."""
    if file.naming == before.naming:
        mine, theirs = plain_order(file.order), before.order
    elif file.when is not None and before.when is not None:
        mine, theirs = f"{file.when:{TIME_FORMAT}}", before.when
    else:
        return None
    try:
        return (mine > theirs) - (mine < theirs)
    except TypeError:  # a record the collector did not write: its order orders nothing
        return None


def copy_learner(batch: Batch, person: Person, student: str) -> bool:
    """Merge a learner's chosen files into their folder in submitted/; whether the learner
    was collected. Each file is compared (:func:`_age`) with the one collected from an
    earlier batch in its place, or, for a file that is not one of the assignment's notebooks
    and has none there, with every file collected before. A newer one replaces it (and is
    graded); an older one is listed and the newer kept; the very bytes graded are left as
    they are, so the grade is reused (a file of the same order but other bytes is listed);
    with nothing to order them by, the later batch's file replaces the earlier. Where a batch
    brings anything newer, the folder then holds (:func:`_merge_into`) what it brings and, of
    what earlier batches left, each notebook of the assignment it has none newer of: every
    other file went with the older submission."""
    files = chosen(batch, person, student)
    try:
        target = learner_folder(batch.course, student)
    except Refused as why:
        for label in _top_labels(files) or [student]:
            batch.refuse(label, str(why))
        return False
    before = collected_before(batch.course, student)
    notebooks = {PurePosixPath(f"{name}.ipynb") for name in batch.course.notebooks()}
    newer = []
    for file in files:
        if (kept := before.get(file.path)) is not None:
            age = _age(file, kept)
            if age != 1 and _digest(file.open) == kept.sha256:
                continue  # the very file graded (a later copy of it is taken, for its order)
        elif file.path not in notebooks:
            kept = next((entry for entry in before.values() if _age(file, entry) == -1), None)
            age = -1 if kept is not None else 1
        else:
            age = 1  # the first of this notebook
        if age in (-1, 0):  # the graded one stays
            batch.refuse(file.label, f"{'older than' if age else 'as new as, yet no copy of,'}"
                                     f" the submission already graded ({plain.line(kept.label)},"
                                     f" from {plain.line(kept.batch)})")
        else:
            newer.append(file)
    if newer:
        taken, held = {file.path for file in newer}, {file.path for file in files}
        stay = {name: entry for name, entry in before.items()
                if name not in taken and (name in held or name in notebooks)}
        _merge_into(batch, target, student, stay, newer, before)
    return True


def _merge_into(batch: Batch, target: Path, student: str, stay: dict[PurePosixPath, Recorded],
                newer: list[File], before: dict[PurePosixPath, Recorded]) -> None:
    """Copy ``newer`` into the learner's folder over what was there, within the limits (the
    files that ``stay`` counted); remove every other file; write its timestamp.txt (the
    latest time any file it holds was handed in, where the batches said) and the record."""
    files = dict(stay)
    budget = MAX_LEARNER_BYTES - sum(target.joinpath(*name.parts).stat().st_size
                                     for name in stay)
    room = MAX_LEARNER_FILES - len(stay)
    times = [f"{file.when:{TIME_FORMAT}}" for file in newer if file.when is not None]
    times += [entry.when for entry in stay.values() if entry.when]
    for file in newer:
        if file.path.parts[0] == TIMESTAMP and times:
            batch.refuse(file.label, f"{TIMESTAMP} is where the grader records when the "
                                     "submission was handed in")
            continue
        try:
            if room <= 0:
                raise Refused(f"beyond the {MAX_LEARNER_FILES} files a learner hands in, "
                              "with those kept from earlier batches")
            budget -= copy_file(file, target, budget)
        except Refused as why:
            batch.refuse(file.label, str(why))
            if file.path in before:  # the file collected before is still there
                files[file.path] = before[file.path]
            continue
        room -= 1
        files[file.path] = Recorded(
            file.naming, plain_order(file.order),
            None if file.when is None else f"{file.when:{TIME_FORMAT}}", file.label,
            batch.name, _file_digest(target.joinpath(*file.path.parts)) or "")
    stamp = PurePosixPath(TIMESTAMP)
    try:
        if times:
            files.pop(stamp, None)
        _prune(target, set(files))
        if times:
            (target / TIMESTAMP).write_text(f"{max(times)}\n")
        _write_record(batch.course, student, files)
    except OSError as error:
        batch.refuse(student, f"its {TIMESTAMP} or the collector's record beside its folder "
                              f"could not be written ({plain.line(error, 120)})")


def _prune(target: Path, keep: set[PurePosixPath]) -> None:
    """Remove from a learner's folder every file not in ``keep`` (a link is removed, never
    followed), then the folders left empty."""
    for directory, folders, names in os.walk(target, topdown=False):
        here = Path(directory)
        for name in [*names, *folders]:
            path = here / name
            if path.is_symlink() or not path.is_dir():
                if PurePosixPath(path.relative_to(target).as_posix()) not in keep:
                    path.unlink()
            elif not any(path.iterdir()):
                path.rmdir()


def copy_file(file: File, target: Path, budget: int) -> int:
    """Copy one file, reading no more than the limits allow, in place of the file of its name
    collected before (which stays where this one cannot be copied); the bytes written."""
    limit = min(MAX_SUBMISSION_BYTES, budget)
    if file.size > limit:
        raise Refused(_too_large(limit))
    destination = target.joinpath(*file.path.parts)
    same_name = "a file and a folder of the same name: the later was not collected"
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        descriptor, part = tempfile.mkstemp(dir=destination.parent, prefix=".collecting-")
    except OSError:
        raise Refused(same_name) from None
    try:
        with os.fdopen(descriptor, "wb") as out, file.open() as source:
            written = _copy_bounded(source, out, limit)
        os.chmod(part, 0o644)
        os.replace(part, destination)  # a link there is replaced, never followed
        return written
    except Refused:
        os.unlink(part)
        raise
    except IsADirectoryError:
        os.unlink(part)
        raise Refused(same_name) from None
    except READ_ERRORS as error:
        os.unlink(part)
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
        return collect_zip(Batch(course, lms, roster=roster, name=submissions.name),
                           submissions)
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
    batch = Batch(course, lms, roster=roster, name=submissions.name)
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
