"""Address or location -> grid, and category + location -> who handles it.

Rules (shared/spec/grid-directory.md):
- community + a building of one of its grids -> that grid (level "grid");
- community known, building unknown or in no grid -> the community office
  (level "community", grid null);
- nothing known -> community null, level null: the caller asks the resident.
- a location (lat, lon) -> the active grid whose polygon contains it.

Routing (`Locator.route`): grid-level categories go to the grid worker;
community-level ones go to the community office (or the body of it that
taxonomy.yml's `handled_by` names: the people's mediation committee, the
residents' council) and still record the grid. Without a grid everything goes to
the community office. The reason is a Chinese sentence stored on the ticket.

A Locator works on an immutable snapshot of the directory. `get_locator`
caches one per database and reloads it when `directory_revision` changes, so
an import in one process reaches the others on their next lookup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from bot.routing.address import AddressParser, ParsedAddress, normalise
from bot.routing.directory import Directory, directory_revision
from bot.routing.geo import Polygon
from bot.store.models import Community, Grid, GridBuilding
from bot.tickets import display


class CategoryLike(Protocol):
    code: str
    label: str
    level: str
    kind: str
    handled_by: str


@dataclass(frozen=True)
class CommunityInfo:
    name: str
    aliases: tuple[str, ...]
    office_name: str | None
    office_phone: str | None
    street: str | None
    street_office_name: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class GridInfo:
    code: str
    name: str
    community: str
    worker_name: str | None
    worker_phone: str | None
    polygon: Polygon | None
    id: int | None = None
    worker_id: int | None = None
    community_id: int | None = None
    wecom_webhook_key: str | None = None


@dataclass(frozen=True)
class DirectorySnapshot:
    """Active communities and grids; buildings as (community, number) -> grid code."""

    communities: dict[str, CommunityInfo]
    grids: dict[str, GridInfo]
    buildings: dict[tuple[str, int], str]
    revision: int = 0

    @classmethod
    def from_session(cls, session: Session) -> DirectorySnapshot:
        revision = directory_revision(session)
        communities: dict[str, CommunityInfo] = {}
        for c in session.execute(
            select(Community)
            .where(Community.active.is_(True))
            .options(joinedload(Community.street))
        ).scalars():
            communities[c.name] = CommunityInfo(
                name=c.name,
                aliases=tuple(c.aliases or ()),
                office_name=c.office_name,
                office_phone=c.office_phone,
                street=c.street.name if c.street else None,
                street_office_name=c.street.office_name if c.street else None,
                id=c.id,
            )
        grids: dict[str, GridInfo] = {}
        for g in session.execute(
            select(Grid)
            .where(Grid.active.is_(True))
            .options(joinedload(Grid.worker), joinedload(Grid.community))
        ).scalars():
            if g.community.name not in communities:
                continue
            grids[g.code] = GridInfo(
                code=g.code,
                name=g.name,
                community=g.community.name,
                worker_name=g.worker.name if g.worker else None,
                worker_phone=g.worker.phone if g.worker else None,
                polygon=Polygon.of(g.polygon) if g.polygon else None,
                id=g.id,
                worker_id=g.worker_id,
                community_id=g.community_id,
                wecom_webhook_key=g.wecom_webhook_key,
            )
        buildings: dict[tuple[str, int], str] = {}
        for community_name, building, code in session.execute(
            select(Community.name, GridBuilding.building, Grid.code)
            .join(Community, GridBuilding.community_id == Community.id)
            .join(Grid, GridBuilding.grid_id == Grid.id)
        ):
            if code in grids:
                buildings[(community_name, building)] = code
        return cls(communities, grids, buildings, revision)

    @classmethod
    def from_directory(cls, directory: Directory) -> DirectorySnapshot:
        """The same view straight from a directory file (no database, no ids)."""
        communities = {
            c.name: CommunityInfo(
                c.name, c.aliases, c.office_name, c.office_phone, c.street, c.street_office_name
            )
            for c in directory.communities
        }
        grids: dict[str, GridInfo] = {}
        buildings: dict[tuple[str, int], str] = {}
        for c in directory.communities:
            for g in c.grids:
                grids[g.code] = GridInfo(
                    code=g.code,
                    name=g.name,
                    community=c.name,
                    worker_name=g.worker.name if g.worker else None,
                    worker_phone=g.worker.phone if g.worker else None,
                    polygon=Polygon.of(g.polygon) if g.polygon else None,
                    wecom_webhook_key=g.wecom_webhook_key,
                )
                for b in g.buildings:
                    buildings[(c.name, b)] = g.code
        return cls(communities, grids, buildings)


@dataclass(frozen=True)
class Located:
    """Where a resident is. `level` is "grid", "community" or None (unknown)."""

    community: str | None = None  # official name
    building: int | None = None
    unit: str | None = None
    room: str | None = None
    grid: str | None = None  # grid code
    level: str | None = None
    lat: float | None = None
    lon: float | None = None
    address_text: str | None = None  # what the resident wrote
    community_text: str | None = None  # the community as written (maybe unknown)

    def as_dict(self) -> dict[str, Any]:
        """The six public fields (the `locate` command's JSON)."""
        return {
            "community": self.community,
            "building": self.building,
            "unit": self.unit,
            "room": self.room,
            "grid": self.grid,
            "level": self.level,
        }


# Location is what open_ticket takes: the same thing.
Location = Located


@dataclass(frozen=True)
class Route:
    level: str  # grid | community
    community: str | None
    grid: str | None  # recorded even when the community office handles it
    assignee: int | None  # worker id; None = the community office as a whole
    reason: str  # Chinese sentence stored on the ticket
    assignee_name: str | None = None  # worker or office, for display
    community_id: int | None = None
    grid_id: int | None = None


class Locator:
    def __init__(self, snapshot: DirectorySnapshot) -> None:
        self.snapshot = snapshot
        self.parser = AddressParser({c.name: c.aliases for c in snapshot.communities.values()})
        self._polygons = [g for g in snapshot.grids.values() if g.polygon is not None]

    @classmethod
    def from_session(cls, session: Session) -> Locator:
        return cls(DirectorySnapshot.from_session(session))

    @classmethod
    def from_directory(cls, directory: Directory) -> Locator:
        return cls(DirectorySnapshot.from_directory(directory))

    # -- lookups ----------------------------------------------------------

    def community(self, name: str | None) -> CommunityInfo | None:
        """A community by official name, alias or a name as residents write it."""
        if not name:
            return None
        info = self.snapshot.communities.get(name)
        if info is None:
            info = self.snapshot.communities.get(self.parser.parse(normalise(name)).community or "")
        return info

    def grid(self, code: str | None) -> GridInfo | None:
        return self.snapshot.grids.get(code) if code else None

    # -- locating ---------------------------------------------------------

    def locate_text(self, text: str, default_community: str | None = None) -> Located:
        """Locate a message; `default_community` (e.g. the bound address) fills a gap."""
        parsed = self.parser.parse(text)
        return self._located(parsed, text, default_community)

    def locate_parsed(self, parsed: ParsedAddress, address_text: str | None = None) -> Located:
        return self._located(parsed, address_text, None)

    def locate_parts(
        self,
        community: str | None,
        building: int | None = None,
        unit: str | None = None,
        room: str | None = None,
        address_text: str | None = None,
    ) -> Located:
        """Locate from separate values (e.g. form fields or slots)."""
        info = self.community(community)
        parsed = ParsedAddress(community, building, unit, room, info.name if info else None)
        return self._located(parsed, address_text, None)

    def _located(
        self, parsed: ParsedAddress, text: str | None, default_community: str | None
    ) -> Located:
        info = self.community(parsed.community) or self.community(default_community)
        grid = None
        if info is not None and parsed.building is not None:
            grid = self.snapshot.buildings.get((info.name, parsed.building))
        level = "grid" if grid else ("community" if info else None)
        return Located(
            community=info.name if info else None,
            building=parsed.building,
            unit=parsed.unit,
            room=parsed.room,
            grid=grid,
            level=level,
            address_text=text,
            community_text=parsed.community_text,
        )

    def locate_point(self, lat: float, lon: float) -> Located:
        for g in self._polygons:
            if g.polygon is not None and g.polygon.contains(lat, lon):
                return Located(community=g.community, grid=g.code, level="grid", lat=lat, lon=lon)
        return Located(lat=lat, lon=lon)

    # -- routing ----------------------------------------------------------

    def route(self, category: CategoryLike, located: Located | None) -> Route:
        located = located or Located()
        grid = self.grid(located.grid)
        info = self.community(located.community)
        if grid is not None and (info is None or info.name != grid.community):
            info = self.snapshot.communities.get(grid.community)
        if info is None:
            return Route(
                level="community",
                community=None,
                grid=None,
                assignee=None,
                reason=f"未能确定所在社区，{category.label}事项待工作人员核实地址后分派",
            )
        place = _place(info.name, located)
        office = display.community_office(info.name, info.office_name)
        if category.level == "grid" and grid is not None:
            worker = grid.worker_name or "（未配置网格员）"
            return Route(
                level="grid",
                community=info.name,
                grid=grid.code,
                assignee=grid.worker_id,
                assignee_name=grid.worker_name,
                reason=(
                    f"{place}属于{grid.name}（{grid.code}），"
                    f"{category.label}属网格事项，由网格员{worker}处理"
                ),
                community_id=info.id,
                grid_id=grid.id,
            )
        if category.level == "grid":
            if located.building is None:
                why = f"未提供楼号，无法确定{info.name}的网格"
            else:
                why = f"{info.name}没有登记{located.building}号楼所属网格"
            reason = f"{why}，{category.label}事项转{office}处理"
        else:
            body = display.body_label(category.handled_by)
            handler = f"{office}（{body}）" if body else office
            reason = f"{category.label}属社区层级事项，由{handler}处理"
            if grid is not None:
                reason += f"；{place}属于{grid.name}（{grid.code}）"
        return Route(
            level="community",
            community=info.name,
            grid=grid.code if grid else None,
            assignee=None,
            assignee_name=office,
            reason=reason,
            community_id=info.id,
            grid_id=grid.id if grid else None,
        )


def _place(community: str, located: Located) -> str:
    """Where the matter is, for the routing reason: the building, or the shared location."""
    if located.building is None and located.lat is not None and located.lon is not None:
        return display.coordinates_label(located.lat, located.lon)
    return display.address_label(
        display.Place(community=community, building=located.building), with_room=False
    )


def route(category: CategoryLike, located: Located | None, locator: Locator) -> Route:
    """Module-level form of `Locator.route`."""
    return locator.route(category, located)


_cache: dict[str, Locator] = {}
_cache_lock = threading.Lock()


def get_locator(session: Session, refresh: bool = False) -> Locator:
    """The Locator for the session's database, reloaded when the directory changed."""
    key = str(session.get_bind().url)
    revision = directory_revision(session)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.snapshot.revision == revision and not refresh:
            return cached
    locator = Locator.from_session(session)
    with _cache_lock:
        _cache[key] = locator
    return locator


def refresh_locator() -> None:
    """Forget all cached Locators (e.g. after changing the directory by hand)."""
    with _cache_lock:
        _cache.clear()
