"""The grid directory file (format: shared/spec/grid-directory.md): load, check, apply.

Loading never trusts the file: it is size-limited, YAML anchors/aliases are
refused (no "billion laughs" expansion), duplicate keys are reported, and every
problem found is collected and raised together as DirectoryError before the
database is touched.

Applying is idempotent and in place: communities are matched by name, grids by
code, workers by phone. Nothing is deleted except building-to-grid rows (pure
configuration); a grid or community missing from the file is marked inactive,
and tickets are never touched. Only streets named in the file are in scope, so
a file for one street does not deactivate another street's grids.

Extension (not in grid-directory.md): a community may carry its own `street:`
and `street_office:`, overriding the file's top-level ones, so that one file
can hold communities of several streets (the demo file does).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Community, Counter, Grid, GridBuilding, Street, Worker

MAX_FILE_BYTES = 1_000_000
MAX_YAML_EVENTS = 200_000
MAX_BUILDING = 9999
MAX_POLYGON_POINTS = 2000
GRID_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
DIRECTORY_REVISION = "directory_revision"


class DirectoryError(ValueError):
    """The directory file has problems; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("grid directory has problems:\n" + "\n".join(f"- {p}" for p in problems))


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    phone: str
    wecom_userid: str | None = None


@dataclass(frozen=True)
class GridSpec:
    code: str
    name: str
    buildings: tuple[int, ...]
    worker: WorkerSpec | None
    households: int | None = None
    wecom_webhook_key: str | None = None
    polygon: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class CommunitySpec:
    name: str
    aliases: tuple[str, ...]
    office_name: str | None
    office_phone: str | None
    street: str
    street_office_name: str | None
    street_office_phone: str | None
    grids: tuple[GridSpec, ...]
    wecom_webhook_key: str | None = None


@dataclass(frozen=True)
class Directory:
    communities: tuple[CommunitySpec, ...]

    @property
    def streets(self) -> dict[str, tuple[str | None, str | None]]:
        """{street name: (office name, office phone)}"""
        return {c.street: (c.street_office_name, c.street_office_phone) for c in self.communities}

    @property
    def grids(self) -> tuple[GridSpec, ...]:
        return tuple(g for c in self.communities for g in c.grids)


# -- loading -----------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reports duplicate keys instead of keeping the last one."""

    problems: list[str]


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            loader.problems.append(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _safe_yaml(text: str) -> Any:
    """yaml.safe_load without anchors/aliases, with an event cap; or DirectoryError."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise DirectoryError([f"file larger than {MAX_FILE_BYTES} bytes"])
    try:
        count = 0
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            count += 1
            if count > MAX_YAML_EVENTS:
                raise DirectoryError([f"YAML has more than {MAX_YAML_EVENTS} nodes"])
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
                line = ev.start_mark.line + 1 if ev.start_mark else "?"
                raise DirectoryError(
                    [f"line {line}: YAML anchors and aliases (&, *) are not allowed"]
                )
        loader = _StrictLoader(text)
        loader.problems = []
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise DirectoryError([f"not valid YAML: {exc}"]) from None
    if loader.problems:
        raise DirectoryError(loader.problems)
    return data


def load_directory_file(path: str | Path) -> Directory:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DirectoryError([f"cannot read {path}: {exc.strerror}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise DirectoryError([f"file larger than {MAX_FILE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DirectoryError(["file is not UTF-8"]) from None
    return parse_directory(text)


def parse_directory(text: str) -> Directory:
    """Parse and validate; DirectoryError lists every problem found."""
    return validate_directory(_safe_yaml(text))


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def text(self, obj: dict, key: str, where: str, required: bool = True) -> str | None:
        value = obj.get(key)
        if value is None or value == "":
            if required:
                self.add(where, f"missing '{key}'")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.add(where, f"'{key}' must be text")
            return None
        value = str(value).strip()
        if len(value) > 200:
            self.add(where, f"'{key}' is too long")
            return None
        return value

    def mapping(self, obj: Any, where: str) -> dict | None:
        if not isinstance(obj, dict):
            self.add(where, "must be a mapping")
            return None
        return obj


def _buildings(raw: Any, where: str, check: _Checker) -> tuple[int, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        check.add(where, "'buildings' must be a list like [\"1-6\", 8]")
        return ()
    numbers: list[int] = []
    for item in raw:
        lo = hi = None
        if isinstance(item, int) and not isinstance(item, bool):
            lo = hi = item
        elif isinstance(item, str):
            m = re.fullmatch(r"\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?", item)
            if m:
                lo = int(m.group(1))
                hi = int(m.group(2) or m.group(1))
        if lo is None or hi is None:
            check.add(where, f'building {item!r} is not a number or range like "1-6"')
            continue
        if not (1 <= lo <= hi <= MAX_BUILDING):
            check.add(where, f"building range {item!r} must be ascending within 1-{MAX_BUILDING}")
            continue
        overlap = set(numbers) & set(range(lo, hi + 1))
        if overlap:
            check.add(where, f"building {min(overlap)} listed twice")
        numbers.extend(range(lo, hi + 1))
    return tuple(sorted(set(numbers)))


def _polygon(raw: Any, where: str, check: _Checker) -> tuple[tuple[float, float], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not 3 <= len(raw) <= MAX_POLYGON_POINTS:
        check.add(where, f"'polygon' must be a list of 3-{MAX_POLYGON_POINTS} [lon, lat] pairs")
        return None
    points = []
    for point in raw:
        ok = (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
        )
        if not ok or not (-180 <= point[0] <= 180 and -90 <= point[1] <= 90):
            check.add(where, f"polygon point {point!r} is not [longitude, latitude]")
            return None
        points.append((float(point[0]), float(point[1])))
    return tuple(points)


def validate_directory(data: Any) -> Directory:
    """Check the loaded YAML against the format; DirectoryError lists all problems."""
    check = _Checker()
    root = check.mapping(data, "file")
    if root is None:
        raise DirectoryError(check.problems)
    street = check.text(root, "street", "file", required=False)
    office = root.get("street_office") or {}
    if not isinstance(office, dict):
        check.add("street_office", "must be a mapping")
        office = {}
    street_office_name = check.text(office, "name", "street_office", required=False)
    street_office_phone = check.text(office, "phone", "street_office", required=False)

    raw_communities = root.get("communities")
    if not isinstance(raw_communities, list) or not raw_communities:
        check.add("file", "'communities' must be a non-empty list")
        raise DirectoryError(check.problems)

    communities: list[CommunitySpec] = []
    names: dict[str, str] = {}  # every name and alias -> community
    codes: dict[str, str] = {}
    phones: dict[str, str] = {}
    for ci, raw_c in enumerate(raw_communities):
        cwhere = f"communities[{ci}]"
        c = check.mapping(raw_c, cwhere)
        if c is None:
            continue
        name = check.text(c, "name", cwhere)
        if name:
            cwhere = f"community {name}"
        aliases_raw = c.get("aliases") or []
        aliases: list[str] = []
        if not isinstance(aliases_raw, list) or not all(
            isinstance(a, str) and a.strip() for a in aliases_raw
        ):
            check.add(cwhere, "'aliases' must be a list of names")
        else:
            aliases = [a.strip() for a in aliases_raw]
        for n in ([name] if name else []) + aliases:
            if n in names and names[n] != name:
                check.add(cwhere, f"name {n!r} is also used by community {names[n]}")
            names[n] = name or ""
        c_office = c.get("office")
        if c_office is None:
            check.add(cwhere, "missing 'office'")
            c_office = {}
        elif not isinstance(c_office, dict):
            check.add(cwhere, "'office' must be a mapping")
            c_office = {}
        office_name = check.text(c_office, "name", f"{cwhere} office")
        office_phone = check.text(c_office, "phone", f"{cwhere} office", required=False)
        c_key = check.text(c_office, "wecom_webhook_key", f"{cwhere} office", required=False)

        c_street = check.text(c, "street", cwhere, required=False) or street
        if not c_street:
            check.add(cwhere, "no 'street' (top-level or on the community)")
        c_street_office = c.get("street_office")
        if isinstance(c_street_office, dict):
            s_name = check.text(c_street_office, "name", f"{cwhere} street_office", False)
            s_phone = check.text(c_street_office, "phone", f"{cwhere} street_office", False)
        elif c_street_office is not None:
            check.add(cwhere, "'street_office' must be a mapping")
            s_name = s_phone = None
        elif c_street == street:
            s_name, s_phone = street_office_name, street_office_phone
        else:
            s_name = s_phone = None

        raw_grids = c.get("grids")
        if not isinstance(raw_grids, list):
            check.add(cwhere, "'grids' must be a list")
            raw_grids = []
        grids: list[GridSpec] = []
        owner: dict[int, str] = {}  # building -> grid code, within this community
        for gi, raw_g in enumerate(raw_grids):
            gwhere = f"{cwhere} grids[{gi}]"
            g = check.mapping(raw_g, gwhere)
            if g is None:
                continue
            code = check.text(g, "code", gwhere)
            if code:
                gwhere = f"grid {code}"
                if not GRID_CODE.match(code):
                    check.add(gwhere, "code may only use letters, digits, '-', '_' and '.'")
                if code in codes:
                    check.add(gwhere, f"duplicate grid code (also in {codes[code]})")
                codes[code] = name or cwhere
            gname = check.text(g, "name", gwhere)
            households = g.get("households")
            if households is not None and (
                not isinstance(households, int) or isinstance(households, bool) or households < 0
            ):
                check.add(gwhere, "'households' must be a whole number")
                households = None
            buildings = _buildings(g.get("buildings"), gwhere, check)
            for b in buildings:
                if b in owner:
                    check.add(gwhere, f"building {b} is also in grid {owner[b]}")
                else:
                    owner[b] = code or gwhere
            worker = None
            w = g.get("worker")
            if w is None:
                check.add(gwhere, "missing 'worker'")
            elif check.mapping(w, f"{gwhere} worker") is not None:
                wname = check.text(w, "name", f"{gwhere} worker")
                wphone = check.text(w, "phone", f"{gwhere} worker")
                wid = check.text(w, "wecom_userid", f"{gwhere} worker", required=False)
                if wname and wphone:
                    if phones.setdefault(wphone, wname) != wname:
                        check.add(
                            gwhere, f"phone {wphone} belongs to {phones[wphone]}, not {wname}"
                        )
                    worker = WorkerSpec(wname, wphone, wid)
            g_key = check.text(g, "wecom_webhook_key", gwhere, required=False)
            polygon = _polygon(g.get("polygon"), gwhere, check)
            if code and gname:
                grids.append(GridSpec(code, gname, buildings, worker, households, g_key, polygon))
        if name and office_name and c_street:
            communities.append(
                CommunitySpec(
                    name=name,
                    aliases=tuple(aliases),
                    office_name=office_name,
                    office_phone=office_phone,
                    street=c_street,
                    street_office_name=s_name,
                    street_office_phone=s_phone,
                    grids=tuple(grids),
                    wecom_webhook_key=c_key,
                )
            )
    if check.problems:
        raise DirectoryError(check.problems)
    return Directory(tuple(communities))


# -- diff and apply -----------------------------------------------------------


@dataclass(frozen=True)
class Change:
    action: str  # add | update | deactivate
    kind: str  # street | community | worker | grid | buildings
    key: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __str__(self) -> str:
        details = "; ".join(
            f"{k}: {_show(old)} -> {_show(new)}" for k, (old, new) in self.fields.items()
        )
        return f"{self.action} {self.kind} {self.key}" + (f" ({details})" if details else "")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"[{len(value)} items]"
    return "-" if value is None else str(value)


def _differences(obj: Any, desired: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    if obj is None:
        return {}
    return {k: (getattr(obj, k), v) for k, v in desired.items() if getattr(obj, k) != v}


def _ranges(numbers: Iterable[int]) -> list[str]:
    """[1,2,3,5] -> ['1-3', '5'] for readable change lists."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return out


def _sync(session: Session, directory: Directory, apply: bool) -> list[Change]:
    changes: list[Change] = []

    def upsert(kind: str, key: str, obj: Any, desired: dict[str, Any], factory: Any) -> Any:
        if obj is None:
            changes.append(Change("add", kind, key))
            if not apply:
                return None
            obj = factory()
            session.add(obj)
        diff = _differences(obj, desired) if obj.id is not None else {}
        if diff:
            changes.append(Change("update", kind, key, diff))
        if apply:
            for k, v in desired.items():
                setattr(obj, k, v)
        return obj

    streets = {s.name: s for s in session.execute(select(Street)).scalars()}
    communities = {c.name: c for c in session.execute(select(Community)).scalars()}
    grids = {g.code: g for g in session.execute(select(Grid)).scalars()}
    workers = {w.phone: w for w in session.execute(select(Worker)).scalars() if w.phone}

    for name, (office_name, office_phone) in directory.streets.items():
        streets[name] = upsert(
            "street",
            name,
            streets.get(name),
            {"office_name": office_name, "office_phone": office_phone},
            lambda name=name: Street(name=name),
        )

    for spec in directory.grids:
        w = spec.worker
        if w is not None:
            desired = {"name": w.name, "wecom_userid": w.wecom_userid}
            workers[w.phone] = upsert(
                "worker",
                f"{w.name} ({w.phone})",
                workers.get(w.phone),
                desired,
                lambda w=w: Worker(phone=w.phone, role="grid_worker", active=True),
            )

    # Which buildings each community maps now, by grid code.
    current_buildings: dict[str, dict[int, str]] = {}
    rows_by_key: dict[tuple[int, int], GridBuilding] = {}
    for row, community_name, code in session.execute(
        select(GridBuilding, Community.name, Grid.code)
        .join(Community, GridBuilding.community_id == Community.id)
        .join(Grid, GridBuilding.grid_id == Grid.id)
    ):
        current_buildings.setdefault(community_name, {})[row.building] = code
        rows_by_key[(row.community_id, row.building)] = row

    in_file_codes = {g.code for g in directory.grids}
    in_file_communities = {c.name for c in directory.communities}

    for cspec in directory.communities:
        existing = communities.get(cspec.name)
        street = streets.get(cspec.street)
        desired_c = {
            "aliases": list(cspec.aliases),
            "office_name": cspec.office_name,
            "office_phone": cspec.office_phone,
            "wecom_webhook_key": cspec.wecom_webhook_key,
            "active": True,
        }
        community = upsert(
            "community",
            cspec.name,
            existing,
            desired_c,
            lambda cspec=cspec: Community(name=cspec.name),
        )
        if existing is not None and (existing.street.name if existing.street else None) != (
            cspec.street
        ):
            changes.append(
                Change(
                    "update",
                    "community",
                    cspec.name,
                    {"street": (existing.street.name if existing.street else None, cspec.street)},
                )
            )
        if apply:
            community.street = street

        for gspec in cspec.grids:
            grid = grids.get(gspec.code)
            worker = workers.get(gspec.worker.phone) if gspec.worker else None
            desired_g = {
                "name": gspec.name,
                "households": gspec.households,
                "wecom_webhook_key": gspec.wecom_webhook_key,
                "polygon": [list(p) for p in gspec.polygon] if gspec.polygon else None,
                "active": True,
            }
            grids[gspec.code] = upsert(
                "grid", gspec.code, grid, desired_g, lambda gspec=gspec: Grid(code=gspec.code)
            )
            if grid is not None:
                refs = {}
                old_c = grid.community.name if grid.community else None
                if old_c != cspec.name:
                    refs["community"] = (old_c, cspec.name)
                old_w = grid.worker.phone if grid.worker else None
                new_w = gspec.worker.phone if gspec.worker else None
                if old_w != new_w:
                    refs["worker"] = (
                        f"{grid.worker.name} ({old_w})" if grid.worker else None,
                        f"{gspec.worker.name} ({new_w})" if gspec.worker else None,
                    )
                if refs:
                    changes.append(Change("update", "grid", gspec.code, refs))
            if apply:
                g = grids[gspec.code]
                g.community = community
                g.worker = worker

        # Buildings of this community: add / move / drop, reported per grid.
        desired_b = {b: g.code for g in cspec.grids for b in g.buildings}
        current_b = current_buildings.get(cspec.name, {})
        for code in sorted({*desired_b.values(), *current_b.values()}):
            want = {b for b, c in desired_b.items() if c == code}
            have = {b for b, c in current_b.items() if c == code}
            if want != have:
                changes.append(
                    Change(
                        "update",
                        "buildings",
                        f"{cspec.name}/{code}",
                        {
                            "buildings": (
                                ",".join(_ranges(have)) or None,
                                ",".join(_ranges(want)) or None,
                            )
                        },
                    )
                )
        if apply:
            session.flush()  # ids for new communities and grids
            for b in set(current_b) - set(desired_b):
                session.delete(rows_by_key.pop((community.id, b)))
            for b, code in desired_b.items():
                row = rows_by_key.get((community.id, b))
                if row is None:
                    session.add(
                        GridBuilding(community_id=community.id, building=b, grid=grids[code])
                    )
                elif current_b.get(b) != code:
                    row.grid = grids[code]

    if apply:
        session.flush()  # building rows moved above now show their new grid_id
    # Deactivate what vanished from the file, within the file's streets.
    file_streets = set(directory.streets)
    for community in communities.values():
        if community.name in in_file_communities or community.street is None:
            continue
        if community.street.name in file_streets and community.active:
            changes.append(Change("deactivate", "community", community.name))
            if apply:
                community.active = False
    for code, grid in grids.items():
        if code in in_file_codes or grid is None or grid.community is None:
            continue
        street = grid.community.street
        if grid.active and street is not None and street.name in file_streets:
            changes.append(Change("deactivate", "grid", code))
            if apply:
                grid.active = False
                for key, row in list(rows_by_key.items()):
                    if row.grid_id == grid.id:
                        session.delete(rows_by_key.pop(key))

    if apply and changes:
        bump_directory_revision(session)
        session.flush()
    return changes


def diff_directory(session: Session, directory: Directory) -> list[Change]:
    """What apply_directory would change (a preview; writes nothing)."""
    with session.no_autoflush:
        return _sync(session, directory, apply=False)


def apply_directory(session: Session, directory: Directory) -> list[Change]:
    """Bring the database in line with `directory` (in the caller's transaction)."""
    return _sync(session, directory, apply=True)


def bump_directory_revision(session: Session) -> None:
    """Tell every process's Locator cache that the directory changed.

    A random value rather than +1: a database that is reset and reloaded must
    not come back to a revision some process has cached.
    """
    value = random.getrandbits(62)
    counter = session.get(Counter, DIRECTORY_REVISION)
    if counter is None:
        session.add(Counter(name=DIRECTORY_REVISION, value=value))
    else:
        counter.value = value


def directory_revision(session: Session) -> int:
    return (
        session.execute(
            select(Counter.value).where(Counter.name == DIRECTORY_REVISION)
        ).scalar_one_or_none()
        or 0
    )
