"""A class's roster: who is in it, under which student id, LMS id, name and section.

An optional CSV the instructor exports from their LMS or registry, one learner a row, with a
header naming its columns (case and spaces do not matter):

    student_id,lms_id,name,section
    obrienm,4711,Mary O'Brien,A

``student_id`` is required (the id the gradebook and grades.csv use); ``lms_id`` is the LMS's
own id (Canvas's user id, a Blackboard username, a Moodle id number), ``name`` the learner's
full name as the LMS shows it, ``section`` anything. With a roster, a batch's learners are found
by their LMS id, else by their name (in any order of its parts, case, accents and punctuation
aside: Canvas's ``obrienmary`` is ``Mary O'Brien``), and the LMS exports carry the LMS ids.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path

#: The names a column may go by, for each field.
COLUMNS = {"student_id": ("student_id", "student id", "id", "student"),
           "lms_id": ("lms_id", "lms id", "user id", "username", "sis user id", "login id"),
           "name": ("name", "full name", "student name"),
           "section": ("section", "group")}


@dataclass(frozen=True)
class Member:
    student_id: str
    lms_id: str = ""
    name: str = ""
    section: str = ""


def name_key(name: str) -> str:
    """A name as it is compared: lower-case letters and digits only, accents dropped."""
    text = unicodedata.normalize("NFKD", name.casefold())
    return "".join(char for char in text if char.isalnum())


def name_keys(name: str) -> set[str]:
    """The forms an LMS may write one name in: first-last and last-first (Canvas's sortable
    name), with ``Last, First`` read as it is meant."""
    if "," in name:
        last, _, first = name.partition(",")
        name = f"{first} {last}"
    parts = name.split()
    if not parts:
        return set()
    return {name_key(" ".join(parts)), name_key(" ".join(parts[-1:] + parts[:-1]))}


class Roster:
    def __init__(self, members: list[Member]):
        self.members = members
        self.by_id = {m.student_id: m for m in members}
        self.by_lms = {m.lms_id: m for m in members if m.lms_id}
        self.by_name: dict[str, list[Member]] = {}
        for member in members:
            for key in name_keys(member.name):
                self.by_name.setdefault(key, []).append(member)

    @classmethod
    def load(cls, path: Path) -> Roster:
        try:
            with path.open(newline="", encoding="utf-8-sig") as file:
                rows = list(csv.DictReader(file))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise SystemExit(f"grade: the roster {path} cannot be read ({error})") from None
        header = {(name or "").strip().lower(): name for name in (rows[0] if rows else {})}
        columns = {field: next((header[n] for n in names if n in header), None)
                   for field, names in COLUMNS.items()}
        if columns["student_id"] is None:
            raise SystemExit(f"grade: the roster {path} has no student_id column (its columns: "
                             f"{', '.join(header) or 'none'})")
        members = [Member(**{field: (row.get(column) or "").strip()
                             for field, column in columns.items() if column})
                   for row in rows]
        return cls([m for m in members if m.student_id])

    def find(self, key: str | None, who: str) -> Member | None:
        """The member an LMS names by ``key`` (its id; None: it gives none) or by ``who`` (a
        name or login); None where no one, or more than one, has that name."""
        if key and key in self.by_lms:
            return self.by_lms[key]
        if who in self.by_lms:
            return self.by_lms[who]
        if who in self.by_id:
            return self.by_id[who]
        found = {id(m): m for k in name_keys(who) for m in self.by_name.get(k, [])}
        return next(iter(found.values())) if len(found) == 1 else None
