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
- one bad file costs only that file: it is listed with the reason and the batch goes on.

What was not collected comes back as ``refused``: a label a teacher can read (made safe with
:func:`autograder.plain.line`) -> why, in one sentence.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from autograder import plain

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")  # matched whole (fullmatch)
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
    whole name of a top-level entry of ``kind`` ("folder" or "file"); its group ``student`` is
    the student id, and for a file, ``file`` is the name the learner gave it."""

    name: str
    kind: str
    pattern: re.Pattern


#: How learners are named at a batch's top level, tried in order. Another LMS's format is one
#: more row (its ``student`` group must be the id the gradebook knows).
NAMINGS = [
    Naming("a learner's folder: <student_id>/...", "folder",
           re.compile(r"(?P<student>.+)", re.DOTALL)),
    Naming("an LMS file (Canvas): <student_id>_<anything_><notebook>.ipynb", "file",
           re.compile(r"(?P<student>[^_]+)_(?P<file>.+\.ipynb)", re.IGNORECASE | re.DOTALL)),
]

NO_ID = ("no student id in the file name: a learner's files go in a folder named by their "
         "student id, or are named <student_id>_..._<notebook>.ipynb as the LMS names them")


def _plain_name(name: str) -> str:
    """A name compared with the assignment's: case, and _ against -, do not matter."""
    return name.lower().replace("_", "-")


def identify(name: str, kind: str, course: CourseFolders) -> tuple[str, str | None]:
    """The student id a top-level entry names, and for a file its name in the learner's
    folder; Refused where it names no learner."""
    if name in ("__MACOSX", ".DS_Store"):
        raise Refused("macOS's metadata (the Finder adds it when it compresses), not a learner's")
    for naming in NAMINGS:
        match = naming.pattern.fullmatch(name) if naming.kind == kind else None
        if match:
            break
    else:
        raise Refused(NO_ID if kind == "file" else "not a learner's folder")
    student = match["student"]
    if kind == "file" and _is_notebook_name(name, student, course):
        raise Refused(f"{NO_ID}; it is the notebook's own name")
    if problem := student_problem(student, course):
        raise Refused(problem)
    return student, _lms_file(match["file"], course) if kind == "file" else None


def _is_notebook_name(name: str, student: str, course: CourseFolders) -> bool:
    """Whether the text before the first ``_`` is part of a notebook's name, not an id: the
    file's name starts with a notebook's name, longer than that text (conv2d_numpy.ipynb)."""
    stem = _plain_name(PurePosixPath(name).stem)
    return any(stem.startswith(_plain_name(notebook)) and len(notebook) > len(student)
               for notebook in course.notebooks())


def _lms_file(rest: str, course: CourseFolders) -> str:
    """The name an LMS file gets in its learner's folder: the assignment's notebook where the
    text after a ``_`` is its name (``12_34_conv2d_numpy.ipynb``), else the text after the id."""
    parts = rest.split("_")
    for start in range(len(parts) - 1, -1, -1):
        stem = PurePosixPath("_".join(parts[start:])).stem
        for notebook in course.notebooks():
            if _plain_name(stem) == _plain_name(notebook):
                return f"{notebook}.ipynb"
    return rest


def student_problem(student: str, course: CourseFolders) -> str | None:
    """Why ``student`` cannot be a student id here (None: it can): checked before any path is
    built from it."""
    if not STUDENT_ID.fullmatch(student) or student in (".", ".."):
        return ("not a usable student id (letters, digits and _.@+- only, starting with a "
                "letter or digit, at most 100)")
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


@dataclass
class Batch:
    """What was found in a batch: each learner's files in the batch's order, and what not."""

    course: CourseFolders
    learners: dict[str, list[File]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    beyond: dict[str, int] = field(default_factory=dict)  # files not even kept in memory
    tops: dict[tuple[str, str], str | None] = field(default_factory=dict)

    def refuse(self, label: str, why: str) -> None:
        label = plain.line(label)
        if self.refused.get(label, why) != why:  # two names shown alike, for different reasons
            label = next(f"{label} ({n})" for n in range(2, 10 ** 6)
                         if f"{label} ({n})" not in self.refused)
        self.refused[label] = why

    def learner(self, top: str, kind: str) -> str | None:
        """The student a top-level entry names (None, and listed, where it names none); once
        per name, however many members lie under it."""
        if (top, kind) not in self.tops:
            try:
                student, _ = identify(top, kind, self.course)
                self.learners.setdefault(student, [])
            except Refused as why:
                self.refuse(top, str(why))
                student = None
            self.tops[top, kind] = student
        return self.tops[top, kind]

    def add(self, student: str, file: File) -> None:
        """A learner's file; past ten times what a learner may hand in, only counted."""
        files = self.learners.setdefault(student, [])
        if len(files) < 10 * MAX_LEARNER_FILES:
            files.append(file)
        else:
            self.beyond[student] = self.beyond.get(student, 0) + 1


# --- a folder of learners' folders ---------------------------------------------------------------

def collect_folder(course: CourseFolders, submissions: Path) -> tuple[list[str], dict[str, str]]:
    """A folder batch: each learner's folder walked without following a link."""
    batch = Batch(course)
    for entry in sorted(submissions.iterdir(), key=lambda path: path.name):
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            batch.refuse(entry.name, "a link, not a learner's folder: links are never followed")
        elif stat.S_ISDIR(mode):
            if (student := batch.learner(entry.name, "folder")) is not None:
                _walk(batch, student, entry)
        elif stat.S_ISREG(mode):
            _top_file(batch, entry.name, entry.lstat().st_size, lambda e=entry: _open_plain(e))
        else:
            batch.refuse(entry.name, "not a regular file or folder (a device, pipe or socket)")
    return copy_all(batch), batch.refused


def _walk(batch: Batch, student: str, top: Path) -> None:
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
            _folder_file(batch, student, path, str(path.relative_to(top.parent)), inside)


def _folder_file(batch: Batch, student: str, path: Path, label: str, inside: Path) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        batch.refuse(label, "a link: links are never followed (it could lead to another "
                            "learner's work or the solutions)")
    elif not stat.S_ISREG(info.st_mode):
        batch.refuse(label, "not a regular file (a device, pipe or socket)")
    elif problem := path_problem([path.name]):
        batch.refuse(label, problem)
    else:
        batch.add(student, File(label, PurePosixPath(inside.as_posix()), info.st_size,
                                lambda: _open_plain(path)))


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
        student, file = identify(name, "file", batch.course)
        if problem := path_problem([file]):
            raise Refused(problem)
    except Refused as why:
        batch.refuse(name, str(why))
        return
    batch.add(student, File(name, PurePosixPath(file), size, opener, lms=True))


# --- an LMS zip --------------------------------------------------------------------------------

def collect_zip(course: CourseFolders, archive: Path) -> tuple[list[str], dict[str, str]]:
    """An LMS zip, read member by member with Python's zipfile, never unpacked as a whole (nor
    by nbgrader's zip_collect, which reads identity anywhere in a path and unpacks archives in
    it)."""
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
        batch = Batch(course)
        for info in members:
            _member(batch, bundle, info)
        return copy_all(batch), batch.refused


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
    student = batch.learner(parts[0], "folder")
    if student is None or len(parts) == 1:
        return
    if problem := _member_problem(info) or (None if info.is_dir() else path_problem(parts[1:])):
        batch.refuse(name, problem)
    elif not info.is_dir():
        batch.add(student, File(name, PurePosixPath(*parts[1:]), info.file_size,
                                lambda: bundle.open(info)))


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
    return [File(f.label, PurePosixPath(*f.path.parts[1:]), f.size, f.open) if inside(f) else f
            for f in files if inside(f) or f.lms]


def chosen(batch: Batch, student: str) -> list[File]:
    """The files a learner hands in for this assignment (:func:`_this_assignment`); of two
    with the same name, the later in the batch; at most MAX_LEARNER_FILES."""
    files = _this_assignment(batch.learners[student], batch.course.assignment)
    kept: dict[PurePosixPath, File] = {}
    for file in files:
        if (earlier := kept.pop(file.path, None)) is not None:
            batch.refuse(earlier.label, f"another file of the same name for this learner, later "
                                        f"in the batch, was kept ({plain.line(file.label)})")
        kept[file.path] = file
    files = list(kept.values())
    beyond = len(files) - MAX_LEARNER_FILES + batch.beyond.get(student, 0)
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


def copy_learner(batch: Batch, student: str) -> bool:
    """Copy a learner's chosen files into submitted/; whether the learner was collected."""
    files = chosen(batch, student)
    try:
        target = learner_folder(batch.course, student)
    except Refused as why:
        batch.refuse(student, str(why))
        return False
    budget = MAX_LEARNER_BYTES
    for file in files:
        try:
            budget -= copy_file(file, target, budget)
        except Refused as why:
            batch.refuse(file.label, str(why))
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

def collect(course: CourseFolders, submissions: Path) -> tuple[list[str], dict[str, str]]:
    """Copy the batch into autograder/submitted/; the learners found, and what was not
    collected (a label -> why)."""
    if submissions.is_file() and submissions.suffix.lower() == ".zip":
        return collect_zip(course, submissions)
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
    return collect_folder(course, submissions)


def copy_all(batch: Batch) -> list[str]:
    """Copy every learner found; the students collected."""
    return sorted(student for student in batch.learners if copy_learner(batch, student))


def already_submitted(course: CourseFolders) -> tuple[list[str], dict[str, str]]:
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
    return students, refused
