"""Trial storage through SQLAlchemy: a SQLite file by default, any database URL (PostgreSQL) the
same way.

A campaign's planned trials are cut into blocks. A worker claims a block with a compare-and-swap
UPDATE (pending -> claimed by it; or a stale claim -> claimed by it), runs it, and in ONE
transaction marks the block done (only if it still owns it) and inserts its trials, so a killed
worker loses at most its unfinished block, which is claimed again, and no trial is stored twice
(the (campaign, trial) primary key guards it too). A claim is stale when its lease has expired
or its owner is a dead process on this host. SQLite runs in WAL mode with `BEGIN IMMEDIATE`, so
claims are serialised. PostgreSQL runs at READ COMMITTED: two workers may read the same pending
block, but the second one's guarded UPDATE waits on the first one's row lock and then re-checks
its WHERE against the committed row, matches nothing and moves on to the next block. A plain
`postgresql://` URL gets the installed driver (psycopg 3, else psycopg2); `postgres://` is
accepted as its alias.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError

from axdnn.errors import InjectionError

metadata = MetaData()
campaigns = Table(
    "axdnn_campaigns",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("config", Text, nullable=False),
    Column("planned", Integer, nullable=False),
    Column("block_size", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created", Float, nullable=False),
)
blocks = Table(
    "axdnn_blocks",
    metadata,
    Column("campaign", String(200), primary_key=True),
    Column("block", Integer, primary_key=True),
    Column("start", Integer, nullable=False),
    Column("stop", Integer, nullable=False),
    Column("status", String(10), nullable=False, index=True),
    Column("owner", String(120)),
    Column("claimed_at", Float),
)
trials = Table(
    "axdnn_trials",
    metadata,
    Column("campaign", String(200), primary_key=True),
    Column("trial", Integer, primary_key=True),
    Column("block", Integer, nullable=False),
    Column("site", String(300), nullable=False),
    Column("sample", Integer, nullable=False),
    Column("element", Integer),
    Column("original", Float),
    Column("corrupted", Float),
    Column("n_samples", Integer, nullable=False),
    Column("n_correct", Integer, nullable=False),
    Column("n_flipped", Integer, nullable=False),
    Column("golden_correct", Integer, nullable=False),
)
TRIAL_COLUMNS = [c.name for c in trials.columns if c.name != "campaign"]
BLOCK_STATES = ("pending", "claimed", "done", "skipped")


POSTGRES_DRIVERS = ("psycopg", "psycopg2")  # tried in this order for a plain postgresql:// URL
_DDL_LOCK = 0x617864_6E6E  # pg_advisory_xact_lock key: one CREATE TABLE pass at a time


def shown_url(url: str | Path) -> str:
    """The URL as it may be printed: any password masked."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def database_url(url: str | Path) -> str:
    """The SQLAlchemy URL for a store: a plain path is a SQLite file; `postgres://` and a
    driverless `postgresql://` get an installed PostgreSQL driver."""
    text = str(url)
    if "://" not in text:
        Path(text).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(text).resolve()}"
    scheme, sep, rest = text.partition("://")
    if scheme not in ("postgres", "postgresql"):
        return text
    for driver in POSTGRES_DRIVERS:
        if importlib.util.find_spec(driver) is not None:
            return f"postgresql+{driver}{sep}{rest}"
    raise InjectionError(
        f"campaign store {shown_url(text)!r} is a PostgreSQL URL but no PostgreSQL driver is "
        f"installed; install one of {', '.join(POSTGRES_DRIVERS)} (pip install 'psycopg[binary]')"
    )


def engine_for(url: str | Path) -> Engine:
    """An engine for a database URL, or a SQLite file for a plain path."""
    text = database_url(url)
    if text.startswith("sqlite"):
        engine = create_engine(text, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options: dict[str, Any] = {"pool_pre_ping": True}
    if text.startswith("postgresql"):
        # the claim protocol relies on READ COMMITTED re-checks (see the module docstring)
        options["isolation_level"] = "READ COMMITTED"
    try:
        return create_engine(text, **options)
    except Exception as err:  # noqa: BLE001 - any driver/URL problem becomes one clear error
        raise InjectionError(f"cannot open campaign store {shown_url(text)!r}: {err}") from None


def create_tables(engine: Engine) -> None:
    """Create the store's tables if missing; on PostgreSQL under an advisory lock, since two
    processes creating them at once would otherwise collide in the catalog."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
        metadata.create_all(conn)


def owner_id() -> str:
    """This worker's identity: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class CampaignStore:
    """Campaigns, blocks and trials in one database (see the module docstring)."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        self.engine = engine_for(url)
        try:
            create_tables(self.engine)
        except DBAPIError as err:
            self.engine.dispose()
            raise InjectionError(
                f"cannot use campaign store {shown_url(self.url)!r}: {err.orig}"
            ) from None

    def _retry(self, fn, attempts: int = 50):
        for attempt in range(attempts):
            try:
                return fn()
            except OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (1 + attempt % 5))
        return None

    def create(self, name: str, config: dict[str, Any], planned: int, block_size: int) -> bool:
        """Register a campaign and its blocks; True if new. An existing campaign must have the
        same config (resuming), else it is an error."""
        text = json.dumps(config, sort_keys=True)
        existing = self.campaign(name)
        if existing is None:
            rows = [
                {
                    "campaign": name,
                    "block": b,
                    "start": s,
                    "stop": min(s + block_size, planned),
                    "status": "pending",
                }
                for b, s in enumerate(range(0, planned, block_size))
            ]
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(campaigns).values(
                            name=name,
                            config=text,
                            planned=planned,
                            block_size=block_size,
                            status="running",
                            created=time.time(),
                        )
                    )
                    if rows:
                        conn.execute(insert(blocks), rows)
                return True
            except IntegrityError:
                existing = self.campaign(name)
        if existing["config"] != json.loads(text) or existing["planned"] != planned:
            raise InjectionError(
                f"campaign {name!r} already exists in {self.url!r} with a different configuration "
                f"or plan; use another name or the same settings to resume it"
            )
        return False

    def campaign(self, name: str) -> dict[str, Any] | None:
        """The campaign's row (config parsed), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.name == name)).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["config"] = json.loads(out["config"])
        return out

    def claim(self, name: str, owner: str, lease_s: float = 600.0) -> tuple[int, int, int] | None:
        """Claim the first pending (or stale) block: (block, start, stop); None if none is left."""

        def attempt():
            now = time.time()
            with self.engine.begin() as conn:
                cond = and_(
                    blocks.c.campaign == name,
                    or_(blocks.c.status == "pending", blocks.c.status == "claimed"),
                )
                rows = conn.execute(
                    select(
                        blocks.c.block,
                        blocks.c.start,
                        blocks.c.stop,
                        blocks.c.status,
                        blocks.c.owner,
                        blocks.c.claimed_at,
                    )
                    .where(cond)
                    .order_by(blocks.c.block)
                ).all()
                for row in rows:
                    if row.status == "claimed" and not (
                        now - (row.claimed_at or 0) > lease_s or _owner_dead(row.owner)
                    ):
                        continue
                    guard = [
                        blocks.c.campaign == name,
                        blocks.c.block == row.block,
                        blocks.c.status == row.status,
                    ]
                    if row.status == "claimed":
                        guard += [
                            blocks.c.owner == row.owner,
                            blocks.c.claimed_at == row.claimed_at,
                        ]
                    done = conn.execute(
                        update(blocks)
                        .where(and_(*guard))
                        .values(status="claimed", owner=owner, claimed_at=now)
                    )
                    if done.rowcount == 1:
                        return (row.block, row.start, row.stop)
                return None

        return self._retry(attempt)

    def complete(self, name: str, block: int, owner: str, rows: list[dict[str, Any]]) -> bool:
        """Store a block's trials and mark it done, atomically, if `owner` still holds it."""

        def attempt():
            with self.engine.begin() as conn:
                done = conn.execute(
                    update(blocks)
                    .where(
                        and_(
                            blocks.c.campaign == name,
                            blocks.c.block == block,
                            blocks.c.owner == owner,
                            blocks.c.status == "claimed",
                        )
                    )
                    .values(status="done")
                )
                if done.rowcount != 1:
                    return False
                if rows:
                    conn.execute(insert(trials), [{"campaign": name, **r} for r in rows])
                return True

        return self._retry(attempt)

    def skip_pending(self, name: str) -> int:
        """Mark every pending block skipped (adaptive stopping); returns how many."""

        def attempt():
            with self.engine.begin() as conn:
                res = conn.execute(
                    update(blocks)
                    .where(and_(blocks.c.campaign == name, blocks.c.status == "pending"))
                    .values(status="skipped")
                )
                return res.rowcount

        return self._retry(attempt)

    def set_status(self, name: str, status: str) -> None:
        def attempt():
            with self.engine.begin() as conn:
                conn.execute(
                    update(campaigns).where(campaigns.c.name == name).values(status=status)
                )

        self._retry(attempt)

    def active_workers(self, name: str, lease_s: float = 600.0) -> int:
        """How many owners hold a live claim on one of the campaign's blocks right now."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(blocks.c.owner, blocks.c.claimed_at).where(
                    blocks.c.campaign == name, blocks.c.status == "claimed"
                )
            ).all()
        live = {
            r.owner
            for r in rows
            if now - (r.claimed_at or 0) <= lease_s and not _owner_dead(r.owner)
        }
        return len(live)

    def block_counts(self, name: str) -> dict[str, int]:
        """Number of blocks in each state."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(blocks.c.status, func.count())
                .where(blocks.c.campaign == name)
                .group_by(blocks.c.status)
            ).all()
        counts = dict.fromkeys(BLOCK_STATES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def totals(self, name: str) -> dict[str, Any]:
        """Aggregates over stored trials, overall and per site (for statistics)."""
        # a float cast: PostgreSQL would make `* 1.0` NUMERIC and hand back Decimal sums
        drop = cast(trials.c.golden_correct - trials.c.n_correct, Float) / trials.c.n_samples
        cols = [
            func.count(),
            func.sum(trials.c.n_samples),
            func.sum(trials.c.n_correct),
            func.sum(trials.c.golden_correct),
            func.sum((trials.c.n_flipped > 0).cast(Integer)),
            func.sum(drop),
            func.sum(drop * drop),
        ]
        keys = ["trials", "samples", "correct", "golden_correct", "critical", "drop_sum", "drop_sq"]
        with self.engine.connect() as conn:
            overall = conn.execute(select(*cols).where(trials.c.campaign == name)).one()
            per_site = conn.execute(
                select(trials.c.site, *cols)
                .where(trials.c.campaign == name)
                .group_by(trials.c.site)
                .order_by(trials.c.site)
            ).all()
        as_dict = lambda row: {k: (v or 0) for k, v in zip(keys, row, strict=True)}  # noqa: E731
        return {"overall": as_dict(overall), "sites": {r[0]: as_dict(r[1:]) for r in per_site}}

    def trials(self, name: str) -> list[dict[str, Any]]:
        """Every stored trial of a campaign, in trial order."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(*[trials.c[c] for c in TRIAL_COLUMNS])
                    .where(trials.c.campaign == name)
                    .order_by(trials.c.trial)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()
