"""Distance-band fares (里程计价): a fare for each band of travelled distance.

File format (as ``shared/data/transit/china_metro/chengdu_metro_fare_bands.csv``)::

    min_km_exclusive,max_km_inclusive,fare_cny

Bands must be contiguous from 0 km and fares must not fall as distance grows. A trip of
0 km (exit at the entry station) pays the first band, as Chengdu charges the starting
fare for a same-station exit. The currency comes from the fare column's name
(``fare_cny`` -> CNY).
"""

from __future__ import annotations

import bisect
from pathlib import Path

from engine.fares.csvfile import read_rows
from engine.fares.errors import FareRulesError, UnpriceableError
from engine.fares.money import to_minor
from engine.fares.stations import km_to_m


class DistanceBands:
    """Fare bands: upper bounds in metres (inclusive) and fares in minor units.

    >>> bands = DistanceBands((4000, 8000), (200, 300), "CNY")
    >>> bands.fare_minor(0), bands.fare_minor(4000), bands.fare_minor(4001)
    (200, 200, 300)
    """

    def __init__(self, upper_m: tuple[int, ...], fare_minor: tuple[int, ...], currency: str) -> None:
        assert len(upper_m) == len(fare_minor) > 0
        assert all(a < b for a, b in zip(upper_m, upper_m[1:])), upper_m
        assert all(a <= b for a, b in zip(fare_minor, fare_minor[1:])), fare_minor
        self.upper_m = upper_m
        self.fares_minor = fare_minor
        self.currency = currency

    @classmethod
    def load(cls, path: Path) -> "DistanceBands":
        """Read a band CSV.

        Raises
        ------
        FareRulesError
            Missing fare column, gaps or overlaps between bands, or falling fares.
        """
        path = Path(path)
        rows = list(read_rows(path, ("min_km_exclusive", "max_km_inclusive"), comments=True))
        fare_fields = [field for field in ("fare_cny", "fare_pln", "fare_eur") if rows and rows[0][field] is not None]
        if not rows or len(fare_fields) != 1:
            raise FareRulesError(f"{path.name}: needs rows and exactly one fare_<currency> column")
        field = fare_fields[0]
        currency = field.removeprefix("fare_").upper()
        upper, fares, previous_upper = [], [], 0
        for row in rows:
            low = km_to_m(row.required("min_km_exclusive"), row.where("min_km_exclusive"))
            high = km_to_m(row.required("max_km_inclusive"), row.where("max_km_inclusive"))
            if low != previous_upper or high <= low:
                raise FareRulesError(f"{row.where('min_km_exclusive')}: band must start at {previous_upper / 1000} km and end after it")
            fare = to_minor(row.required(field), currency, row.where(field))
            if fares and fare < fares[-1]:
                raise FareRulesError(f"{row.where(field)}: fare falls as distance grows")
            upper.append(high)
            fares.append(fare)
            previous_upper = high
        return cls(tuple(upper), tuple(fares), currency)

    def fare_minor(self, distance_m: int) -> int:
        """The fare for ``distance_m`` metres.

        Raises
        ------
        UnpriceableError
            The distance is negative or beyond the last band.
        """
        index = bisect.bisect_left(self.upper_m, distance_m)
        if distance_m < 0 or index == len(self.upper_m):
            raise UnpriceableError(f"distance {distance_m} m is outside the fare bands (max {self.upper_m[-1]} m)")
        return self.fares_minor[index]
