"""Which countries and regions CodeCarbon has carbon data for, read from its own data files without importing it.

The scheduler never imports codecarbon (no GPU stack, and its import costs
seconds), but a sweep's carbon setting must be one CodeCarbon will use:
for a code it has no data for (`GER` instead of `DEU`) it silently takes
the world average, 475 g/kWh, and it ignores a region except for US
states, Canadian provinces and the Nordic bidding zones. So the installed
CodeCarbon's package folder is located (importlib.util.find_spec does not
run the package) and its JSON files are read directly, the same files its
emissions code reads.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

GLOBAL_MIX = "data/private_infra/global_energy_mix.json"
# The regional files, found by name under data/private_infra (their year folder moves between releases; the
# newest wins, as CodeCarbon's own DataSource points at it). China's provinces arrived in CodeCarbon 3.3.1.
REGION_FILES = {"USA": "usa_emissions.json", "CAN": "canada_energy_mix.json",
                "CHN": "china_provincial_emissions.json"}
NORDIC_FILE = "data/private_infra/nordic_emissions.json"
# codecarbon.core.emissions: the countries whose regions are bidding zones of the Nordic file.
NORDIC_PREFIXES = {"SWE": "SE", "NOR": "NO", "FIN": "FI"}
CHINA_SUFFIX = re.compile(r"\s+(autonomous region|municipality|province|sheng|shi|zizhiqu)$")


@lru_cache(maxsize=1)
def package_dir() -> Path | None:
    """The installed codecarbon package's folder, or None when it is not installed here."""
    try:
        spec = importlib.util.find_spec("codecarbon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=8)
def _read(relative: str) -> dict | None:
    folder = package_dir()
    if folder is None:
        return None
    try:
        return json.loads((folder / relative).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=8)
def _regional(country: str) -> dict | None:
    folder = package_dir()
    if folder is None or country not in REGION_FILES:
        return None
    found = sorted((folder / "data" / "private_infra").glob(f"*/{REGION_FILES[country]}"))
    return _read(str(found[-1].relative_to(folder))) if found else None


def countries() -> dict[str, str] | None:
    """ISO code -> country name, for every country CodeCarbon has an energy mix for; None without CodeCarbon."""
    mix = _read(GLOBAL_MIX)
    return None if mix is None else {code: str(row.get("country_name", code)) for code, row in mix.items()}


def regions(country: str) -> list[str] | None:
    """The regions CodeCarbon uses for `country`, as it compares them; [] where it ignores any region; None
    where this CodeCarbon's data cannot be read (nothing is checked then)."""
    if country in REGION_FILES:
        data = _regional(country)
        if data is None:
            return [] if package_dir() is not None and country == "CHN" else None  # an older CodeCarbon
        if country == "CHN":
            return sorted({name for province in data.get("data", {}).values() for name in province.get("names", [])})
        return sorted(key for key in data if not key.startswith("_"))  # _source, _unit: metadata
    if country in NORDIC_PREFIXES:
        data = _read(NORDIC_FILE)
        if data is None:
            return None
        prefix = NORDIC_PREFIXES[country]
        return sorted(zone for zone in data.get("data", {}) if zone.upper().startswith(prefix))
    return []


def _as_compared(country: str, region: str) -> str:
    if country in NORDIC_PREFIXES:
        return region.upper()
    if country == "CHN":
        return CHINA_SUFFIX.sub("", " ".join(region.lower().split()))
    return region.lower()


def country_problem(code: str) -> str | None:
    """Why CodeCarbon would not use this country code, naming close valid ones; None when it would."""
    known = countries()
    if known is None or code in known:
        return None
    close = difflib.get_close_matches(code, known, n=3, cutoff=0.6)
    by_name = [c for c, name in sorted(known.items(), key=lambda item: item[1])
               if name.upper().startswith(code[:3].upper())]
    close = list(dict.fromkeys(by_name + close))[:3]
    hint = "; did you mean " + " or ".join(f"{c} ({known[c]})" for c in close) + "?" if close else ""
    return (f"{code!r} is not a country CodeCarbon has data for (it would use the world average){hint} "
            f"Codes are ISO 3166-1 alpha-3, e.g. DEU, FRA, USA")


def region_problem(country: str, region: str) -> str | None:
    """Why CodeCarbon would ignore this region (or not find it), naming close valid ones; None when it uses it."""
    known = regions(country)
    if known is None:
        return None
    if not known:
        return (f"CodeCarbon ignores a region for {country} and uses its country mix; regions are used only for "
                "USA (states), CAN and CHN (provinces), SWE, NOR and FIN (bidding zones): remove region")
    compared = _as_compared(country, region)
    if compared in known:
        return None
    close = difflib.get_close_matches(compared, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        f"; known: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''}"
    return f"{region!r} is not a region CodeCarbon has data for in {country} (it would use the country mix){hint}"
