"""The assistant's embedded business store: a SQLite file.

Orders, courses and clinics are seeded from the JSON files in the knowledge
folder the first time a database file is opened; returns, tickets, enrolments
and appointments are written by the actions. Every call opens its own short
connection, so the store is safe to use from the action server's concurrent
requests and does nothing at import time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from actions.config import get_settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, customer TEXT, item TEXT, status TEXT,
    placed TEXT, delivered TEXT, eta TEXT, carrier TEXT, tracking TEXT
);
CREATE TABLE IF NOT EXISTS courses (
    code TEXT PRIMARY KEY, title TEXT, topics TEXT, weeks INTEGER,
    level TEXT, seats INTEGER
);
CREATE TABLE IF NOT EXISTS clinics (
    name TEXT PRIMARY KEY, city TEXT, specialty TEXT, phone TEXT, address TEXT
);
CREATE TABLE IF NOT EXISTS returns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT, reason TEXT,
    sender_id TEXT, created_at TEXT
);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sender_id TEXT, topic TEXT,
    last_message TEXT, created_at TEXT
);
CREATE TABLE IF NOT EXISTS enrolments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, course_code TEXT, student_name TEXT,
    email TEXT, sender_id TEXT, created_at TEXT
);
CREATE TABLE IF NOT EXISTS appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, specialty TEXT, city TEXT,
    preferred_date TEXT, patient_name TEXT, sender_id TEXT, created_at TEXT
);
"""

# Prefixes of the references users are told, e.g. "TCK-000042".
RETURN_PREFIX = "RET"
TICKET_PREFIX = "TCK"
ENROLMENT_PREFIX = "ENR"
APPOINTMENT_PREFIX = "APT"

_initialised: set = set()
_init_lock = threading.Lock()


def make_reference(prefix: str, row_id: int) -> str:
    """Formats the reference a user is given for a stored row."""
    return f"{prefix}-{row_id:06d}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Order:
    """One order of the shop."""

    order_id: str
    customer: str
    item: str
    status: str
    placed: str
    delivered: Optional[str] = None
    eta: Optional[str] = None
    carrier: Optional[str] = None
    tracking: Optional[str] = None


@dataclass(frozen=True)
class Course:
    """One course of the catalogue."""

    code: str
    title: str
    topics: List[str]
    weeks: int
    level: str
    seats: int


@dataclass(frozen=True)
class Clinic:
    """One clinic of the directory."""

    name: str
    city: str
    specialty: str
    phone: str
    address: str


class Store:
    """Access to the SQLite business store.

    Args:
        db_path: the database file; created and seeded on first use.
        seed_dir: folder holding ``orders.json``, ``courses.json`` and
            ``clinics.json``.
    """

    def __init__(self, db_path: Path, seed_dir: Path) -> None:
        self.db_path = Path(db_path)
        self.seed_dir = Path(seed_dir)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._ensure_initialised()
        conn = sqlite3.connect(self.db_path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _ensure_initialised(self) -> None:
        key = str(self.db_path.resolve())
        if key in _initialised:
            return
        with _init_lock:
            if key in _initialised:
                return
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=10)
            try:
                with conn:
                    conn.executescript(_SCHEMA)
                    self._seed(conn)
            finally:
                conn.close()
            _initialised.add(key)

    def _seed(self, conn: sqlite3.Connection) -> None:
        orders = json.loads((self.seed_dir / "orders.json").read_text("utf-8"))
        for order in orders["orders"]:
            fields = {k: order.get(k) for k in Order.__dataclass_fields__}
            conn.execute(
                "INSERT OR IGNORE INTO orders VALUES (:order_id, :customer, :item, "
                ":status, :placed, :delivered, :eta, :carrier, :tracking)",
                fields,
            )
        courses = json.loads((self.seed_dir / "courses.json").read_text("utf-8"))
        for course in courses["courses"]:
            conn.execute(
                "INSERT OR IGNORE INTO courses VALUES (?, ?, ?, ?, ?, ?)",
                (
                    course["code"],
                    course["title"],
                    json.dumps(course["topics"]),
                    course["weeks"],
                    course["level"],
                    course["seats"],
                ),
            )
        clinics = json.loads((self.seed_dir / "clinics.json").read_text("utf-8"))
        for clinic in clinics["clinics"]:
            conn.execute(
                "INSERT OR IGNORE INTO clinics VALUES "
                "(:name, :city, :specialty, :phone, :address)",
                clinic,
            )

    # -- customer service -------------------------------------------------

    def get_order(self, order_id: str) -> Optional[Order]:
        """Returns the order with this id, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
        return Order(**dict(row)) if row else None

    def create_return(self, order_id: str, reason: str, sender_id: str) -> str:
        """Records a return request and returns its reference."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO returns (order_id, reason, sender_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (order_id, reason, sender_id, _now()),
            )
            return make_reference(RETURN_PREFIX, int(cursor.lastrowid))

    def create_ticket(self, sender_id: str, topic: str, last_message: str) -> str:
        """Records a hand-off ticket for a human agent and returns its reference."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO tickets (sender_id, topic, last_message, created_at) "
                "VALUES (?, ?, ?, ?)",
                (sender_id, topic, last_message, _now()),
            )
            return make_reference(TICKET_PREFIX, int(cursor.lastrowid))

    def get_ticket(self, reference: str) -> Optional[Dict[str, Any]]:
        """Returns a stored ticket by its reference, or None."""
        row_id = _row_id(reference, TICKET_PREFIX)
        if row_id is None:
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM tickets WHERE id = ?", (row_id,)).fetchone()
        return dict(row) if row else None

    # -- education --------------------------------------------------------

    def list_courses(self) -> List[Course]:
        """Returns the whole catalogue, ordered by course code."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM courses ORDER BY code").fetchall()
        return [_course(row) for row in rows]

    def search_courses(self, topic: str) -> List[Course]:
        """Returns the courses whose topics or title mention ``topic``."""
        needle = topic.strip().lower()
        return [
            course
            for course in self.list_courses()
            if needle in course.title.lower()
            or any(needle == t or needle in t for t in course.topics)
        ]

    def find_course(self, text: str) -> Optional[Course]:
        """Finds a course by its code or title, case-insensitively."""
        needle = " ".join(text.lower().split())
        for course in self.list_courses():
            if needle in (course.code.lower(), course.title.lower()):
                return course
        return None

    def create_enrolment(
        self, course_code: str, student_name: str, email: str, sender_id: str
    ) -> str:
        """Records an enrolment and returns its reference."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO enrolments (course_code, student_name, email, sender_id, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (course_code, student_name, email, sender_id, _now()),
            )
            return make_reference(ENROLMENT_PREFIX, int(cursor.lastrowid))

    # -- medical information ---------------------------------------------

    def find_clinics(
        self, city: Optional[str] = None, specialty: Optional[str] = None
    ) -> List[Clinic]:
        """Returns the clinics matching the city and/or specialty given."""
        query, params = "SELECT * FROM clinics WHERE 1 = 1", []
        if city:
            query += " AND city = ?"
            params.append(city.lower())
        if specialty:
            query += " AND specialty = ?"
            params.append(specialty.lower())
        with self._connect() as conn:
            rows = conn.execute(query + " ORDER BY name", params).fetchall()
        return [Clinic(**dict(row)) for row in rows]

    def clinic_values(self, column: str) -> List[str]:
        """The distinct cities or specialties of the clinic directory."""
        if column not in {"city", "specialty"}:
            raise ValueError(f"Unknown clinic column '{column}'.")
        with self._connect() as conn:
            rows = conn.execute(f"SELECT DISTINCT {column} FROM clinics ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def create_appointment(
        self,
        specialty: str,
        city: str,
        preferred_date: str,
        patient_name: str,
        sender_id: str,
    ) -> str:
        """Records an appointment request and returns its reference."""
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO appointments (specialty, city, preferred_date, "
                "patient_name, sender_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (specialty, city, preferred_date, patient_name, sender_id, _now()),
            )
            return make_reference(APPOINTMENT_PREFIX, int(cursor.lastrowid))

    def count(self, table: str) -> int:
        """Number of rows in one of the store's tables (for reports and tests)."""
        if table not in {"orders", "courses", "clinics", "returns", "tickets",
                         "enrolments", "appointments"}:
            raise ValueError(f"Unknown table '{table}'.")
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _course(row: sqlite3.Row) -> Course:
    data = dict(row)
    data["topics"] = json.loads(data["topics"])
    return Course(**data)


def _row_id(reference: str, prefix: str) -> Optional[int]:
    head, _, number = reference.strip().upper().partition("-")
    if head != prefix or not number.isdigit():
        return None
    return int(number)


def get_store() -> Store:
    """The store configured by the environment (see ``actions.config``)."""
    settings = get_settings()
    return Store(settings.db_path, settings.knowledge_dir)
