"""The hostile batches: what an LMS zip or a folder of learners' folders can hold to fool the
collector (autograder/collect.py), which decides whose files are whose.

Each :class:`Attack` adds members to a batch beside the honest learners of
:data:`hostile.corpus.VICTIMS`: its name (also the attacker's student id, where it has one),
what it does in one sentence, a builder, and what it deserves — which members must be listed as
not graded (with a phrase of the reason), and which learners it brings into the grades with
what score. Nothing it adds may reach an honest learner's folder, any other learner's grade, or
a path outside the grader's folder.

The worst case is assumed: the attacker has read the grader's code, knows the course's layout
(``Kit.targets.root``) and where the batch lies (``Kit.targets.submissions``). Members that are
not notebooks an attacker aims at someone else are :func:`planted` bytes: if one ever reached an
honest learner's folder, that learner would score nothing, and the bytes name who planted them.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hostile.corpus import ASSIGNMENT, FILE, VICTIMS, Kit, notebook

ZIP, FOLDER = "zip", "folder"
FULL, ZERO = "full", "zero"
#: A date for every member, so that a batch is the same bytes each time it is built.
WHEN = (2026, 1, 15, 12, 0, 0)


# --- writing a batch ---------------------------------------------------------------------------

class ZipBatch:
    """An LMS-style zip, written member by member, some forged as no honest tool writes them."""

    form = ZIP

    def __init__(self, path: Path):
        self.path = path
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        #: (member, patch): byte edits of a member's headers or data once the zip is closed
        self.patches: list[tuple[str, Callable[[bytearray, int, int], None]]] = []

    def _info(self, name: str, mode: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, WHEN)
        info.create_system = 3  # Unix: the mode below is read from external_attr
        info.external_attr = mode << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def file(self, name: str, data: bytes) -> None:
        info = self._info(name, stat.S_IFREG | 0o644)
        if len(data) < 64:
            info.compress_type = zipfile.ZIP_STORED  # nothing to gain, and quicker
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile's note on a duplicate name: meant here
            self.archive.writestr(info, data)

    def folder(self, name: str) -> None:
        self.archive.writestr(self._info(name.rstrip("/") + "/", stat.S_IFDIR | 0o755), b"")

    def link(self, name: str, target: str) -> None:
        self.archive.writestr(self._info(name, stat.S_IFLNK | 0o777), target.encode())

    def special(self, name: str, kind: int = stat.S_IFCHR) -> None:
        """A member whose mode says device (or pipe): its bytes name the solutions."""
        self.archive.writestr(self._info(name, kind | 0o600), b"/dev/zero")

    def large(self, name: str, megabytes: int) -> None:
        """``megabytes`` MB of zeros, deflated to about a thousandth, written as a stream."""
        with self.archive.open(self._info(name, stat.S_IFREG | 0o644), "w",
                               force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(bytes(1 << 20))

    def corrupt(self, name: str, data: bytes) -> None:
        """A member stored as it is, whose first byte is flipped once the zip is closed: its
        CRC no longer matches."""
        info = self._info(name, stat.S_IFREG | 0o644)
        info.compress_type = zipfile.ZIP_STORED
        self.archive.writestr(info, data)
        self.patches.append((name, _flip_first_byte))

    def declare(self, name: str, data: bytes, size: int) -> None:
        """A member whose headers declare ``size`` bytes, whatever it holds."""
        self.file(name, data)
        self.patches.append((name, lambda raw, central, local: _declare_size(raw, central, local,
                                                                               size)))

    def close(self) -> None:
        self.archive.close()
        if self.patches:
            raw = bytearray(self.path.read_bytes())
            offsets = _members(raw)
            for name, patch in self.patches:
                patch(raw, *offsets[name])
            self.path.write_bytes(bytes(raw))


def _members(raw: bytearray) -> dict[str, tuple[int, int]]:
    """Each member's name -> (its central directory entry's offset, its local header's)."""
    archive = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    found, offset = {}, archive.start_dir
    for info in archive.infolist():
        assert raw[offset:offset + 4] == b"PK\x01\x02"
        found[info.orig_filename] = (offset, info.header_offset)
        sizes = struct.unpack("<HHH", raw[offset + 28:offset + 34])
        offset += 46 + sum(sizes)
    return found


def _flip_first_byte(raw: bytearray, central: int, local: int) -> None:
    name_length, extra_length = struct.unpack("<HH", raw[local + 26:local + 30])
    raw[local + 30 + name_length + extra_length] ^= 0xFF


def _declare_size(raw: bytearray, central: int, local: int, size: int) -> None:
    raw[central + 24:central + 28] = struct.pack("<I", size)
    raw[local + 22:local + 26] = struct.pack("<I", size)


class FolderBatch:
    """A folder of learners' folders, as a teacher unpacks a download or an exchange holds it."""

    form = FOLDER

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def _at(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, name: str, data: bytes) -> None:
        self._at(name).write_bytes(data)

    def folder(self, name: str) -> None:
        self._at(name).mkdir(exist_ok=True)

    def link(self, name: str, target: str) -> None:
        self._at(name).symlink_to(target)

    def fifo(self, name: str) -> None:
        os.mkfifo(self._at(name))

    def sparse(self, name: str, megabytes: int) -> None:
        """A file of ``megabytes`` MB that takes no room on disk."""
        with self._at(name).open("wb") as file:
            file.truncate(megabytes << 20)

    def close(self) -> None:
        pass


# --- what members hold -------------------------------------------------------------------------

def own_notebook(kit: Kit, student: str) -> bytes:
    """A correct notebook that names who handed it in (so its bytes are that learner's)."""
    def same_id(nb) -> None:  # a new cell's id is random: the same bytes each time instead
        nb.cells[-1].id = "handed-in-by"

    with tempfile.TemporaryDirectory() as scratch:
        notebook(scratch=[f"# handed in by {student}"], edit=same_id)(kit, Path(scratch))
        return (Path(scratch) / FILE).read_bytes()


def planted(attacker: str) -> bytes:
    """What an attacker aims at someone else's folder: not a notebook, and it says whose."""
    return f'{{"planted by": "{attacker}"}}\n'.encode()


def honest(kit: Kit, batch, student: str) -> None:
    """An honest learner's folder: the notebook they worked in."""
    batch.file(f"{student}/{FILE}", own_notebook(kit, student))


def _archive_of(members: dict[str, bytes], kind: str) -> bytes:
    """A zip or .tar.gz holding ``members``."""
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(zipfile.ZipInfo(name, WHEN), data)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zeros_zip(megabytes: int) -> bytes:
    """A zip of ``megabytes`` MB of zeros: about a thousandth of that."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros.ipynb", "w", force_zip64=True) as member:
        for _ in range(megabytes):
            member.write(bytes(1 << 20))
    return buffer.getvalue()


#: What macOS's Finder adds for each file it compresses: an AppleDouble header.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
SOLUTION = f"solutions/{ASSIGNMENT}/{FILE}"
CONTROL = "\x1b]0;all graded\x07\x1b[2J\x1b[31mFULL MARKS\r\n"
FORMULA = "=HYPERLINK(\"example.invalid\")&"
CYRILLIC_A = "\u0430"


# --- the attacks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    """One way of fooling the collector, and what it deserves."""

    name: str                                   # the attacker's student id, where it has one
    what: str                                   # what it does, in one sentence
    build: Callable[[Kit, ZipBatch | FolderBatch], None]
    refused: tuple[tuple[str, str], ...] = ()   # (what must be listed, a phrase of why)
    graded: tuple[tuple[str, str], ...] = ()    # (student id, FULL or ZERO): who it brings in
    kept: tuple[tuple[str, str], ...] = ()      # (student id, path): a planted file they keep
    forms: tuple[str, ...] = (ZIP, FOLDER)      # the batches it can be written in


def path_in_folder(kit, batch):
    batch.file(f"path-in-folder/{VICTIMS[0]}/{ASSIGNMENT}/{FILE}", planted("path-in-folder"))


def ghost_writer(kit, batch):
    batch.file(f"ghost-writer/absent-learner/{FILE}", planted("ghost-writer"))


def lms_name_in_folder(kit, batch):
    batch.file(f"lms-name-in-folder/{VICTIMS[1]}_111_222_{FILE}", planted("lms-name-in-folder"))


def nested_archives(kit, batch):
    members = {f"{VICTIMS[0]}/{FILE}": planted("nested-archive"),
               f"{VICTIMS[1]}_1_2_{FILE}": planted("nested-archive")}
    batch.file("nested-archive/more.zip", _archive_of(members, "zip"))
    batch.file("nested-archive/more.tar.gz", _archive_of(members, "tar"))
    batch.file("nested-archive/bomb.zip", _zeros_zip(512))


def misleading_names(kit, batch):
    batch.file(f"misleading-names/{CONTROL}.ipynb", planted("misleading-names"))
    batch.file(f"misleading-names/{FORMULA}{FILE}", planted("misleading-names"))
    batch.file(f"\x1b[2J{VICTIMS[0]}/{FILE}", planted("misleading-names"))


def formula_id(kit, batch):
    batch.file(f"-2+3/{FILE}", planted("formula-id"))
    batch.file(f"@1+2_1_2_{FILE}", planted("formula-id"))


def look_alike_ids(kit, batch):
    batch.file(f"{VICTIMS[0].replace('a', CYRILLIC_A)}/{FILE}", planted("look-alike-id"))
    batch.file(f"{VICTIMS[1]}\u200b/{FILE}", planted("look-alike-id"))


def newline_id(kit, batch):
    batch.file(f"{VICTIMS[0]}\n/{FILE}", planted("newline-id"))


def reserved_ids(kit, batch):
    batch.file(f"CON/{FILE}", planted("reserved-id"))
    batch.file(f"nul_1_2_{FILE}", planted("reserved-id"))


def empty_notebook(kit, batch):
    batch.file(f"empty-notebook/{FILE}", b"")


def macos_metadata(kit, batch):
    batch.file(f"__MACOSX/{VICTIMS[0]}/._{FILE}", APPLE_DOUBLE)
    batch.file(f"__MACOSX/._{VICTIMS[0]}", APPLE_DOUBLE)


def phantom_notebooks(kit, batch):
    anonymous = own_notebook(kit, "nobody")
    for name in ("conv2d_numpy.ipynb", "conv2d-numpy.ipynb", "Conv2d_NumPy (1).ipynb"):
        batch.file(name, anonymous)


def assignment_folder(kit, batch):
    batch.file(f"{ASSIGNMENT}/{FILE}", own_notebook(kit, "nobody"))


def duplicate_member(kit, batch):
    batch.file(f"duplicate-member/{FILE}", own_notebook(kit, "duplicate-member"))
    batch.file(f"duplicate-member/{FILE}", planted("duplicate-member"))


def lms_and_folder(kit, batch):
    batch.file(f"lms-and-folder/{FILE}", own_notebook(kit, "lms-and-folder"))
    batch.file(f"lms-and-folder_1_2_{FILE}", planted("lms-and-folder"))


def bad_crc(kit, batch):
    batch.file(f"bad-crc/{FILE}", planted("bad-crc"))
    batch.corrupt("bad-crc/notes.txt", b"notes the learner kept beside the notebook\n" * 20)


def escaping_members(kit, batch):
    batch.file(f"escaping-member/../../../{FILE}", planted("escaping-member"))
    batch.file(str(kit.targets.root.parent / "escaped-absolute.ipynb"), planted("escaping"))
    batch.file(f"escaping-member/..\\..\\{VICTIMS[0]}\\{FILE}", planted("escaping-member"))
    batch.file(f"escaping-member\\..\\{VICTIMS[1]}\\{FILE}", planted("escaping-member"))


def special_members(kit, batch):
    batch.link(f"special-members/{FILE}", str(kit.targets.root / SOLUTION))
    batch.link(f"special-members/{ASSIGNMENT}", str(kit.targets.root / "solutions" / ASSIGNMENT))
    batch.special("special-members/device")
    batch.special("special-members/pipe", stat.S_IFIFO)


def size_lies(kit, batch):
    batch.declare(f"size-lies/{FILE}", planted("size-lies"), 0xE800_0000)
    batch.large("size-lies/outputs.txt", 40)


def many_members(kit, batch):
    """100,000 members in a zip; 20,000 files in a folder (40 times what a learner may hand
    in, and a fifth of the time to write)."""
    for index in range(100_000 if batch.form == ZIP else 20_000):
        batch.file(f"many-members/f/{index:06d}.txt", b"x")


def oversize_file(kit, batch):
    batch.sparse("oversize-file/weights.bin", 60)


def symlinked_assignment(kit, batch):
    batch.link(f"symlinked-assignment/{ASSIGNMENT}",
               str(kit.targets.root / "solutions" / ASSIGNMENT))


def symlinked_to_victim(kit, batch):
    batch.link(f"symlinked-to-victim/{ASSIGNMENT}", str(kit.targets.submissions / VICTIMS[0]))


def symlinked_learner(kit, batch):
    batch.link("symlinked-learner", str(kit.targets.submissions / VICTIMS[1]))


def symlinked_file(kit, batch):
    batch.link(f"symlinked-file/{FILE}", str(kit.targets.root / SOLUTION))


def fifo(kit, batch):
    batch.fifo(f"fifo/{FILE}")


def dot_dot_id(kit, batch):
    batch.file(f".._1_2_{FILE}", planted("dot-dot-id"))
    batch.file(f"._1_2_{FILE}", planted("dot-dot-id"))


UNUSABLE = "not a usable student id"
NO_ID = "no student id"
LINK = "link"
ODD = "not a regular file"

ATTACKS = [
    Attack("path-in-folder", "Puts victim-a/02-numpy/conv2d-numpy.ipynb inside the attacker's own "
           "folder, hoping a path inside it decides whose file it is.", path_in_folder,
           graded=(("path-in-folder", ZERO),),
           kept=(("path-in-folder", f"{VICTIMS[0]}/{ASSIGNMENT}/{FILE}"),)),
    Attack("ghost-writer", "Hands in a notebook in a folder named as a classmate who handed in "
           "nothing, to give them a grade.", ghost_writer, graded=(("ghost-writer", ZERO),),
           kept=(("ghost-writer", f"absent-learner/{FILE}"),)),
    Attack("lms-name-in-folder", "Puts a file named as the LMS names victim-b's notebook inside "
           "the attacker's own folder.", lms_name_in_folder,
           graded=(("lms-name-in-folder", ZERO),)),
    Attack("nested-archive", "Hands in a .zip and a .tar.gz holding files for victim-a and "
           "victim-b, and a half-megabyte zip that unpacks to 512 MB.", nested_archives,
           refused=(("nested-archive/more.zip", "archive"),
                    ("nested-archive/more.tar.gz", "archive"),
                    ("nested-archive/bomb.zip", "archive")),
           graded=(("nested-archive", ZERO),)),
    Attack("misleading-names", "File and folder names with terminal escape sequences and line "
           "breaks (to rewrite the teacher's screen) and a name starting with = (a formula once "
           "a message naming it is in grades.csv).", misleading_names,
           refused=(("?[2Jvictim-a", UNUSABLE),), graded=(("misleading-names", ZERO),),
           kept=(("misleading-names", f"{CONTROL}.ipynb"), ("misleading-names",
                                                           f"{FORMULA}{FILE}"))),
    Attack("formula-id", "Learners' names that start with - and @, which a spreadsheet reads as "
           "a formula.", formula_id,
           refused=(("-2+3", UNUSABLE), (f"@1+2_1_2_{FILE}", UNUSABLE))),
    Attack("look-alike-id", "Folders named victim-a with a Cyrillic a and victim-b with a "
           "zero-width space, to pass as the honest learners.", look_alike_ids,
           refused=((VICTIMS[0].replace("a", CYRILLIC_A), UNUSABLE),
                    (f"{VICTIMS[1]}?", UNUSABLE))),
    Attack("newline-id", "A folder named victim-a followed by a newline: a second victim-a row "
           "in grades.csv.", newline_id, refused=((f"{VICTIMS[0]} ", UNUSABLE),)),
    Attack("reserved-id", "Student ids CON and nul, names Windows reserves for devices (the "
           "teacher's copy of the feedback breaks there).", reserved_ids,
           refused=(("CON", "Windows"), (f"nul_1_2_{FILE}", "Windows"))),
    Attack("empty-notebook", "Hands in a notebook of 0 bytes.", empty_notebook,
           graded=(("empty-notebook", ZERO),)),
    Attack("macosx", "A __MACOSX folder (as the Finder's Compress adds) with a resource fork "
           "named as victim-a's notebook.", macos_metadata, refused=(("__MACOSX", "macOS"),)),
    Attack("phantom-notebook", "Notebooks at the batch's top level named only as the notebook "
           "(conv2d_numpy.ipynb would make a learner 'conv2d').", phantom_notebooks,
           refused=(("conv2d_numpy.ipynb", NO_ID), ("conv2d-numpy.ipynb", NO_ID),
                    ("Conv2d_NumPy (1).ipynb", NO_ID))),
    Attack("assignment-folder", "A top-level folder named as the assignment, as when a teacher "
           "zips the folder holding the class.", assignment_folder,
           refused=((ASSIGNMENT, "assignment"),)),
    Attack("duplicate-member", "The same member twice in the zip (a correct notebook, then a "
           "file that is not one: the later is kept), which aborted the whole zip.",
           duplicate_member, refused=((f"duplicate-member/{FILE}", "same name"),),
           graded=(("duplicate-member", ZERO),), kept=(("duplicate-member", FILE),),
           forms=(ZIP,)),
    Attack("lms-and-folder", "A learner's folder and, later, an LMS-named file that both give "
           "the learner a conv2d-numpy.ipynb (the later, not a notebook, is kept).",
           lms_and_folder, refused=((f"lms-and-folder/{FILE}", "same name"),),
           graded=(("lms-and-folder", ZERO),), kept=(("lms-and-folder", FILE),)),
    Attack("bad-crc", "A member whose bytes do not match its CRC beside the learner's other "
           "file, which aborted the whole zip.", bad_crc,
           refused=(("bad-crc/notes.txt", "could not be read"),),
           graded=(("bad-crc", ZERO),), kept=(("bad-crc", FILE),), forms=(ZIP,)),
    Attack("escaping-member", "Members named with .., with an absolute path and with "
           "backslashes (..\\victim-a\\...), to be written outside the attacker's folder.",
           escaping_members,
           refused=((f"escaping-member/../../../{FILE}", "outside"),
                    ("escaped-absolute.ipynb", "outside"),
                    ("escaping-member/..\\", "backslash"), ("escaping-member\\", NO_ID)),
           graded=(("escaping-member", ZERO),), forms=(ZIP,)),
    Attack("special-members", "Zip members whose mode says symbolic link (to the solutions' "
           "notebook and folder), character device or named pipe.", special_members,
           refused=((f"special-members/{FILE}", LINK), (f"special-members/{ASSIGNMENT}", LINK),
                    ("special-members/device", ODD), ("special-members/pipe", ODD)),
           graded=(("special-members", ZERO),), forms=(ZIP,)),
    Attack("size-lies", "A member whose headers declare 3.6 GB, and one of 40 MB of zeros that "
           "takes 40 kB in the zip.", size_lies,
           refused=((f"size-lies/{FILE}", "larger than"), ("size-lies/outputs.txt", "compressed")),
           graded=(("size-lies", ZERO),), forms=(ZIP,)),
    Attack("many-members", "100,000 tiny files in one learner's folder (20,000 in a folder "
           "batch).", many_members,
           refused=(("many-members", "at most"),), graded=(("many-members", ZERO),)),
    Attack("oversize-file", "A 60 MB file (sparse: it takes no room) in a learner's folder.",
           oversize_file, refused=(("oversize-file/weights.bin", "larger than"),),
           graded=(("oversize-file", ZERO),), forms=(FOLDER,)),
    Attack("symlinked-assignment", "The learner's 02-numpy folder is a link to the instructor's "
           "solutions/02-numpy.", symlinked_assignment,
           refused=((f"symlinked-assignment/{ASSIGNMENT}", LINK),),
           graded=(("symlinked-assignment", ZERO),), forms=(FOLDER,)),
    Attack("symlinked-to-victim", "The learner's 02-numpy folder is a link to victim-a's folder.",
           symlinked_to_victim, refused=((f"symlinked-to-victim/{ASSIGNMENT}", LINK),),
           graded=(("symlinked-to-victim", ZERO),), forms=(FOLDER,)),
    Attack("symlinked-learner", "A learner's folder that is a link to victim-b's.",
           symlinked_learner, refused=(("symlinked-learner", LINK),), forms=(FOLDER,)),
    Attack("symlinked-file", "The learner's notebook is a link to the instructor's source.",
           symlinked_file, refused=((f"symlinked-file/{FILE}", LINK),),
           graded=(("symlinked-file", ZERO),), forms=(FOLDER,)),
    Attack("fifo", "The learner's notebook is a named pipe (opening it would hang the grader).",
           fifo, refused=((f"fifo/{FILE}", ODD),), graded=(("fifo", ZERO),), forms=(FOLDER,)),
    Attack("dot-dot-id", "LMS file names whose student id is .. and ., to write beside "
           "autograder/submitted/.", dot_dot_id,
           refused=((f".._1_2_{FILE}", UNUSABLE), (f"._1_2_{FILE}", UNUSABLE)), forms=(ZIP,)),
]


def build_batch(kit: Kit, batch: ZipBatch | FolderBatch, attacks: list[Attack]) -> None:
    """The honest learners and ``attacks`` (those that can be written in this form)."""
    for student in VICTIMS:
        honest(kit, batch, student)
    for attack in attacks:
        if batch.form in attack.forms:
            attack.build(kit, batch)
    batch.close()
