"""A metro network as a graph of stations with track distances, from a CSV file.

File format (UTF-8, ``#`` comment lines carry the sources)::

    line_id,station_id,name_zh,name_en,previous_station_id,distance_from_previous_km

One row per station per line: the first station of a line (or branch start) has empty
``previous_station_id``/``distance``; every other row is the edge to the adjacent
station. A station on several lines (an interchange) appears once per line. Distances
are decimals in km, converted exactly to integer metres; the fare distance between two
stations is the shortest path over the graph (as Chinese metros charge: 按最短路径计程).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from engine.fares.csvfile import read_rows
from engine.fares.errors import FareRulesError, UnpriceableError

# Stations per network file; a whole-city metro has a few hundred.
STATIONS_MAX = 5_000


@dataclass(frozen=True, slots=True)
class Station:
    """A station: id, names and the lines it is on."""

    station_id: str
    name_zh: str
    name_en: str
    line_ids: tuple[str, ...]


def km_to_m(text: str, where: str) -> int:
    """Exact metres from a decimal km string (at most 3 decimals).

    >>> km_to_m("1.514", "x")
    1514
    >>> km_to_m("4", "x")
    4000

    Raises
    ------
    FareRulesError
        Not a non-negative decimal with at most 3 decimals.
    """
    try:
        metres = Decimal(text) * 1000
    except InvalidOperation:
        raise FareRulesError(f"{where}: {text!r} is not a decimal km value") from None
    if not metres.is_finite() or metres != metres.to_integral_value() or metres < 0:
        raise FareRulesError(f"{where}: {text!r} must be >= 0 km with at most 3 decimals")
    return int(metres)


class StationNetwork:
    """Stations and all-pairs shortest track distances (metres), computed at load."""

    def __init__(self, stations: dict[str, Station], edges: dict[str, dict[str, int]]) -> None:
        assert 0 < len(stations) <= STATIONS_MAX
        self.stations = stations
        self._distance_m: dict[str, dict[str, int]] = {
            station_id: _shortest_paths(edges, station_id) for station_id in stations
        }
        for origin, reached in self._distance_m.items():
            if len(reached) != len(stations):
                missing = sorted(set(stations) - set(reached))[:3]
                raise FareRulesError(f"network: {origin!r} cannot reach {missing}")

    @classmethod
    def load(cls, path: Path) -> "StationNetwork":
        """Read a network CSV (format in the module docstring).

        Raises
        ------
        FareRulesError
            Missing columns, unknown ``previous_station_id``, a bad distance, a station
            with two different names, or a disconnected network.
        """
        path = Path(path)
        stations: dict[str, Station] = {}
        edges: dict[str, dict[str, int]] = {}
        pending: list[tuple[str, str, int, str]] = []
        fields = ("line_id", "station_id", "name_zh", "name_en", "previous_station_id", "distance_from_previous_km")
        for row in read_rows(path, fields, comments=True):
            station_id, line_id = row.required("station_id"), row.required("line_id")
            known = stations.get(station_id)
            if known is not None and (known.name_zh, known.name_en) != (row.required("name_zh"), row.required("name_en")):
                raise FareRulesError(f"{row.where('name_zh')}: {station_id!r} was named differently before")
            lines = known.line_ids if known is not None else ()
            stations[station_id] = Station(station_id, row.required("name_zh"), row.required("name_en"),
                                           lines if line_id in lines else (*lines, line_id))
            edges.setdefault(station_id, {})
            previous = row["previous_station_id"]
            if previous is None:
                if row["distance_from_previous_km"] is not None:
                    raise FareRulesError(f"{row.where('distance_from_previous_km')}: set without previous_station_id")
                continue
            distance_m = km_to_m(row.required("distance_from_previous_km"), row.where("distance_from_previous_km"))
            if distance_m == 0:
                raise FareRulesError(f"{row.where('distance_from_previous_km')}: adjacent stations 0 km apart")
            pending.append((station_id, previous, distance_m, row.where("previous_station_id")))
            if len(stations) > STATIONS_MAX:
                raise FareRulesError(f"{path.name}: more than {STATIONS_MAX} stations")
        if not stations:
            raise FareRulesError(f"{path.name}: no stations")
        for station_id, previous, distance_m, where in pending:
            if previous not in stations:
                raise FareRulesError(f"{where}: {previous!r} is not a station of this file")
            for a, b in ((station_id, previous), (previous, station_id)):
                edges[a][b] = min(distance_m, edges[a].get(b, distance_m))
        return cls(stations, edges)

    def distance_m(self, from_station_id: str, to_station_id: str) -> int:
        """Shortest track distance in metres.

        Raises
        ------
        UnpriceableError
            Either station is not in the network.
        """
        try:
            return self._distance_m[from_station_id][to_station_id]
        except KeyError:
            unknown = from_station_id if from_station_id not in self.stations else to_station_id
            raise UnpriceableError(f"station_id {unknown!r} is not in the metro network") from None


def _shortest_paths(edges: dict[str, dict[str, int]], origin: str) -> dict[str, int]:
    distance = {origin: 0}
    queue = [(0, origin)]
    while queue:
        so_far, station = heapq.heappop(queue)
        if so_far > distance[station]:
            continue
        for neighbour, step in edges[station].items():
            candidate = so_far + step
            if candidate < distance.get(neighbour, candidate + 1):
                distance[neighbour] = candidate
                heapq.heappush(queue, (candidate, neighbour))
    return distance
