"""The constraint layer: business rules from a YAML file, applied to every response.

Rules file (every key optional)::

    blocklist: [item-13, item-99]        # never recommended
    blocklist_file: blocked.txt          # one item id per line, added to blocklist
    allow_list: [item-1, item-2]         # when present, only these items (e.g. in stock)
    allow_list_file: available.txt
    exclude_seen: true                   # drop items already in the session
    exclude_purchased: true              # drop items bought in the session
    max_per_category: 3                  # at most this many items of one category
    item_categories: {item-1: shoes}     # category of each item, for the two category checks
    item_categories_file: categories.csv # item_id,category lines, added to item_categories

Relative file paths are read from the rules file's folder. The request's own
``excluded_item_ids`` and category filter pass through the same layer. An item
without a known category counts toward no category limit and fails any
category filter.

>>> rules = Rules(blocklist=frozenset({"b"}), max_per_category=1, item_categories={"a": "x", "c": "x"})
>>> kept, removed = apply_rules(rules, ["a", "b", "c", "d"], RequestConstraints(), k=3)
>>> kept, dict(removed)
(['a', 'd'], {'blocklist': 1, 'max_per_category': 1})
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml


class Rule:
    """Names of the rules, as counted in metrics."""

    BLOCKLIST = "blocklist"
    ALLOW_LIST = "allow_list"
    SEEN = "exclude_seen"
    PURCHASED = "exclude_purchased"
    MAX_PER_CATEGORY = "max_per_category"
    REQUEST_EXCLUDED = "request_excluded"
    CATEGORY_FILTER = "category_filter"


KNOWN_KEYS = {
    "blocklist", "blocklist_file", "allow_list", "allow_list_file", "exclude_seen", "exclude_purchased",
    "max_per_category", "item_categories", "item_categories_file",
}


class InvalidRules(ValueError):
    """A rules file that cannot be used; the server keeps the rules it had."""


@dataclass(frozen=True)
class Rules:
    """Business rules; the defaults allow everything."""

    blocklist: frozenset[str] = frozenset()
    allow_list: frozenset[str] | None = None
    """None allows every item; a set allows only its items."""
    exclude_seen: bool = False
    exclude_purchased: bool = False
    max_per_category: int | None = None
    item_categories: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestConstraints:
    """Per-request additions to the rules: the session's items and the request's own exclusions."""

    seen: frozenset[str] = frozenset()
    purchased: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    """Allowed categories; empty allows every category."""


def removal_reason(rules: Rules, constraints: RequestConstraints, item: str) -> str | None:
    """Return the first rule that removes ``item`` on its own, or None if it may be shown."""
    if item in rules.blocklist:
        return Rule.BLOCKLIST
    if rules.allow_list is not None and item not in rules.allow_list:
        return Rule.ALLOW_LIST
    if item in constraints.excluded:
        return Rule.REQUEST_EXCLUDED
    if rules.exclude_purchased and item in constraints.purchased:
        return Rule.PURCHASED
    if rules.exclude_seen and item in constraints.seen:
        return Rule.SEEN
    if constraints.categories and rules.item_categories.get(item) not in constraints.categories:
        return Rule.CATEGORY_FILTER
    return None


def apply_rules(
    rules: Rules, ranked_items: Sequence[str], constraints: RequestConstraints, k: int
) -> tuple[list[str], Counter]:
    """Keep the first ``k`` items of ``ranked_items`` (best first) that break no rule.

    Returns the kept items in order and the count of items each rule removed.
    Items after the ``k``-th kept one are not examined, so they are not counted.
    Duplicates keep their first position.
    """
    kept: list[str] = []
    removed: Counter = Counter()
    per_category: Counter = Counter()
    shown: set[str] = set()
    for item in ranked_items:
        if len(kept) >= k:
            break
        if item in shown:
            continue
        reason = removal_reason(rules, constraints, item)
        category = rules.item_categories.get(item)
        if reason is None and rules.max_per_category is not None and category is not None:
            if per_category[category] >= rules.max_per_category:
                reason = Rule.MAX_PER_CATEGORY
        if reason is not None:
            removed[reason] += 1
            continue
        kept.append(item)
        shown.add(item)
        if category is not None:
            per_category[category] += 1
    return kept, removed


def load_rules(path: Path) -> Rules:
    """Read a rules file; raises :class:`InvalidRules` naming the key and the problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidRules(f"cannot read rules file {path}: {error}") from error
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InvalidRules(f"rules file {path} must contain a mapping of rule names, got {type(document).__name__}")
    unknown = sorted(set(map(str, document)) - KNOWN_KEYS)
    if unknown:
        raise InvalidRules(f"rules file {path} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    folder = path.parent
    blocklist = set(_id_list(document, "blocklist", path))
    if "blocklist_file" in document:
        blocklist.update(_read_id_file(folder / str(document["blocklist_file"]), "blocklist_file"))
    allow_list: set[str] | None = None
    if "allow_list" in document or "allow_list_file" in document:
        if "allow_list" in document and document["allow_list"] is None:
            raise InvalidRules(
                f"allow_list in {path} has no value, which would allow no item; list the allowed item ids, "
                "write [] to allow none, or remove the key to allow every item"
            )
        allow_list = set(_id_list(document, "allow_list", path))
        if "allow_list_file" in document:
            allow_list.update(_read_id_file(folder / str(document["allow_list_file"]), "allow_list_file"))
    categories = dict(_category_map(document.get("item_categories") or {}, path))
    if "item_categories_file" in document:
        categories.update(_read_category_file(folder / str(document["item_categories_file"])))
    return Rules(
        blocklist=frozenset(blocklist),
        allow_list=None if allow_list is None else frozenset(allow_list),
        exclude_seen=_flag(document, "exclude_seen", path),
        exclude_purchased=_flag(document, "exclude_purchased", path),
        max_per_category=_max_per_category(document.get("max_per_category"), path),
        item_categories=categories,
    )


def _id_list(document: Mapping[str, Any], key: str, path: Path) -> list[str]:
    values = document.get(key) or []
    if not isinstance(values, list) or not all(isinstance(value, (str, int)) for value in values):
        raise InvalidRules(f"{key} in {path} must be a list of item ids")
    booleans = [value for value in values if isinstance(value, bool)]
    if booleans:
        # YAML reads unquoted yes, no, on, off, true and false as booleans.
        raise InvalidRules(f"{key} in {path} contains {booleans[0]!r}, a YAML boolean; quote item ids such as 'yes'")
    return [str(value) for value in values]


def _flag(document: Mapping[str, Any], key: str, path: Path) -> bool:
    value = document.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRules(f"{key} in {path} must be true or false, got {value!r}")
    return value


def _max_per_category(value: Any, path: Path) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRules(f"max_per_category in {path} must be an integer >= 1, got {value!r}")
    return value


def _category_map(value: Any, path: Path) -> Iterable[tuple[str, str]]:
    if not isinstance(value, dict):
        raise InvalidRules(f"item_categories in {path} must map item ids to categories")
    return ((str(item), str(category)) for item, category in value.items())


def _read_id_file(path: Path, key: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRules(f"cannot read {key} {path}: {error}") from error
    return [line.strip() for line in lines if line.strip()]


def _read_category_file(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InvalidRules(f"cannot read item_categories_file {path}: {error}") from error
    categories = {}
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != 2:
            raise InvalidRules(f"line {number} of {path} has {len(row)} columns; expected item_id,category")
        categories[row[0].strip()] = row[1].strip()
    return categories
