"""AgentTradingConfig: shape, defaults, deep merge, validation and effective levels (domain §2).

The JSON field names are the reference engine's (camelCase); attributes are snake_case through
msgspec ``rename="camel"``. Every number is a ``Decimal`` except the two integer fields
(``signals.minScore`` and the holder-count bounds). Encode with
``msgspec.json.Encoder(decimal_format="number")`` (:func:`encode_config`) so clients see JSON
numbers, as upstream sends.

Validation walks the merged JSON itself instead of leaning on ``msgspec.convert`` because the API
must report *every* bad field as ``"dot.path: message"`` (msgspec stops at the first). The messages
are upstream's. As with upstream's schema, cross-field rules of an object only run when every field
below it has the right type. Upstream's extra "business" checks are not repeated: each one is implied
by a schema rule below (custom stop loss/DCA needing levels, dropPercent ≥ −99, custom take-profit
allocation ≤ 100), so they can never add an error once the schema passes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import msgspec

from app.trading._num import exact, plain, to_decimal

StopLossMode = Literal["fixed", "exponential", "zones", "custom"]
LevelsMode = Literal["aggressive", "moderate", "conservative", "custom"]
TokenFilterMode = Literal["none", "blacklist", "whitelist"]


class _Struct(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    pass


class PurchaseLimits(_Struct, omit_defaults=True):
    minimum_agent_balance: Decimal
    max_purchase_per_token: Decimal
    max_price_impact: Decimal | None = None  # fraction (0.05 = 5 %); None disables the check


class SignalsConfig(_Struct, omit_defaults=True):
    min_score: int
    allowed_signal_types: tuple[str, ...]
    token_filter_mode: TokenFilterMode
    token_list: tuple[str, ...]
    market_cap_min: Decimal | None = None
    market_cap_max: Decimal | None = None
    liquidity_min: Decimal | None = None
    liquidity_max: Decimal | None = None
    holder_count_min: int | None = None
    holder_count_max: int | None = None

    @property
    def has_metric_bounds(self) -> bool:
        return any(getattr(self, name) is not None for name in METRIC_BOUND_ATTRS)


class TrailingLevel(_Struct):
    change: Decimal
    stop_loss: Decimal


class StopLossConfig(_Struct):
    enabled: bool
    default_percentage: Decimal
    mode: StopLossMode
    trailing_levels: tuple[TrailingLevel, ...]


class BalanceThresholds(_Struct):
    minimum: Decimal
    medium: Decimal
    large: Decimal


class SizeRange(_Struct):
    min: Decimal
    max: Decimal


class PositionSizes(_Struct):
    small: SizeRange
    medium: SizeRange
    large: SizeRange


class Randomization(_Struct):
    enabled: bool


class PositionCalculatorConfig(_Struct):
    sol_balance_thresholds: BalanceThresholds
    position_sizes: PositionSizes
    randomization: Randomization


class StaleTradeConfig(_Struct):
    enabled: bool
    min_hold_time_minutes: Decimal
    min_profit_percent: Decimal
    max_profit_percent: Decimal


class DcaLevel(_Struct):
    drop_percent: Decimal
    buy_percent: Decimal


class DcaConfig(_Struct):
    enabled: bool
    mode: LevelsMode
    levels: tuple[DcaLevel, ...]
    max_dca_count: Decimal = msgspec.field(name="maxDCACount")
    cooldown_seconds: Decimal


class TakeProfitLevel(_Struct):
    target_percent: Decimal
    sell_percent: Decimal


class MoonBagConfig(_Struct):
    enabled: bool
    trigger_percent: Decimal
    retain_percent: Decimal


class TakeProfitConfig(_Struct):
    enabled: bool
    mode: LevelsMode
    levels: tuple[TakeProfitLevel, ...]
    moon_bag: MoonBagConfig


class AgentTradingConfig(_Struct):
    purchase_limits: PurchaseLimits
    signals: SignalsConfig
    stop_loss: StopLossConfig
    position_calculator: PositionCalculatorConfig
    stale_trade: StaleTradeConfig
    dca: DcaConfig
    take_profit: TakeProfitConfig


class InvalidConfig(ValueError):
    """The merged config breaks the schema; ``errors`` lists every ``"dot.path: message"``."""

    code = "INVALID_CONFIG"

    def __init__(self, errors: list[str]) -> None:
        super().__init__("Invalid trading configuration")
        self.errors = list(errors)

    def __repr__(self) -> str:
        return f"InvalidConfig({self.errors!r})"


METRIC_BOUND_KEYS = (
    "marketCapMin",
    "marketCapMax",
    "liquidityMin",
    "liquidityMax",
    "holderCountMin",
    "holderCountMax",
)
METRIC_BOUND_ATTRS = (
    "market_cap_min",
    "market_cap_max",
    "liquidity_min",
    "liquidity_max",
    "holder_count_min",
    "holder_count_max",
)

_D = Decimal
DEFAULT_CONFIG_JSON: dict[str, Any] = {
    "purchaseLimits": {
        "minimumAgentBalance": _D("0.5"),
        "maxPurchasePerToken": _D("2.0"),
        "maxPriceImpact": _D("0.05"),
    },
    "signals": {"minScore": 1, "allowedSignalTypes": [], "tokenFilterMode": "none", "tokenList": []},
    "stopLoss": {"enabled": True, "defaultPercentage": _D(-32), "mode": "fixed", "trailingLevels": []},
    "positionCalculator": {
        "solBalanceThresholds": {"minimum": _D("0.2"), "medium": _D(5), "large": _D(10)},
        "positionSizes": {
            "small": {"min": _D("0.1"), "max": _D("0.1")},
            "medium": {"min": _D("0.5"), "max": _D("1.0")},
            "large": {"min": _D("1.5"), "max": _D("2.0")},
        },
        "randomization": {"enabled": True},
    },
    "staleTrade": {
        "enabled": True,
        "minHoldTimeMinutes": _D(60),
        "minProfitPercent": _D(1),
        "maxProfitPercent": _D(10),
    },
    "dca": {"enabled": False, "mode": "moderate", "levels": [], "maxDCACount": _D(3), "cooldownSeconds": _D(30)},
    "takeProfit": {
        "enabled": False,
        "mode": "moderate",
        "levels": [
            {"targetPercent": _D(50), "sellPercent": _D(25)},
            {"targetPercent": _D(150), "sellPercent": _D(25)},
            {"targetPercent": _D(300), "sellPercent": _D(25)},
            {"targetPercent": _D(400), "sellPercent": _D(15)},
        ],
        "moonBag": {"enabled": True, "triggerPercent": _D(300), "retainPercent": _D(10)},
    },
}


# --------------------------------------------------------------------------------------------------
# Merge and normalisation


def deep_merge(base: dict, overlay: dict) -> dict:
    """New dict: objects merge key by key; arrays, scalars and explicit nulls replace (§2.3)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _normalize(merged: dict) -> dict:
    stop_loss = merged.get("stopLoss")
    if isinstance(stop_loss, dict):
        stop_loss.pop("continuousTrailing", None)
        mode = stop_loss.get("mode")
        if not mode and not isinstance(mode, list | dict):
            stop_loss["mode"] = "fixed"
    signals = merged.get("signals")
    if isinstance(signals, dict):
        # null means "clear this bound" (PUT semantics); absent already means "no bound"
        for key in METRIC_BOUND_KEYS:
            if key in signals and signals[key] is None:
                del signals[key]
    return merged


# --------------------------------------------------------------------------------------------------
# Schema

_Rule = tuple[Callable[[Decimal], bool], str]


def _ge(bound: Any, msg: str) -> _Rule:
    b = Decimal(bound)
    return (lambda v: v >= b), msg


def _gt(bound: Any, msg: str) -> _Rule:
    b = Decimal(bound)
    return (lambda v: v > b), msg


def _le(bound: Any, msg: str) -> _Rule:
    b = Decimal(bound)
    return (lambda v: v <= b), msg


@dataclass(frozen=True, slots=True)
class _Num:
    rules: tuple[_Rule, ...] = ()
    optional: bool = False
    integer: str | None = None  # message when the value is not a whole number


@dataclass(frozen=True, slots=True)
class _Bool:
    pass


@dataclass(frozen=True, slots=True)
class _Enum:
    values: tuple[str, ...]
    message: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class _Str:
    min_len: int
    max_len: int
    min_msg: str
    max_msg: str


@dataclass(frozen=True, slots=True)
class _List:
    item: Any
    max_len: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class _Obj:
    fields: dict[str, Any]
    refine: Callable[[dict, tuple, Callable[[tuple, str], None]], None] | None = None


_INVALID = object()
_POSITIVE = _gt(0, "Number must be greater than 0")
_NON_NEGATIVE_INT = _ge(0, "Number must be greater than or equal to 0")


def _pairs_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    for lo, hi, label in (
        ("marketCapMin", "marketCapMax", "market cap"),
        ("liquidityMin", "liquidityMax", "liquidity"),
        ("holderCountMin", "holderCountMax", "holder count"),
    ):
        if data.get(lo) is not None and data.get(hi) is not None and data[lo] > data[hi]:
            issue((*path, hi), f"Minimum {label} must be ≤ maximum")


def _stop_loss_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    if data["mode"] != "custom":
        return
    levels = data["trailingLevels"]
    if data["enabled"] and not levels:
        issue((*path, "trailingLevels"), "Trailing levels cannot be empty when mode is custom and stop loss is enabled")
    for i in range(1, len(levels)):
        if levels[i]["change"] >= levels[i - 1]["change"]:
            issue(
                (*path, "trailingLevels", i),
                "Trailing levels must be sorted descending by change (required for custom mode)",
            )


def _thresholds_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    if not data["minimum"] < data["medium"]:
        issue(path, "Minimum threshold must be < medium threshold")
    if not data["medium"] < data["large"]:
        issue(path, "Medium threshold must be < large threshold")


def _size_range_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    if data["min"] > data["max"]:
        issue(path, "Minimum position size must be <= maximum position size")


def _stale_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    if data["minProfitPercent"] > data["maxProfitPercent"]:
        issue(
            (*path, "maxProfitPercent"),
            "Minimum profit/loss must be less than or equal to maximum profit/loss",
        )


def _dca_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    if data["mode"] != "custom":
        return
    levels = data["levels"]
    if data["enabled"] and not levels:
        issue((*path, "levels"), "DCA levels cannot be empty when mode is custom and DCA is enabled")
    for i in range(1, len(levels)):
        if levels[i]["dropPercent"] > levels[i - 1]["dropPercent"]:
            issue(
                (*path, "levels", i),
                "DCA levels must be sorted by dropPercent (least negative first; e.g. -20 before -30)",
            )


def _take_profit_refine(data: dict, path: tuple, issue: Callable[[tuple, str], None]) -> None:
    # Checked even when take-profit is disabled, as upstream does (§16.30).
    if data["mode"] != "custom":
        return
    levels, moon_bag = data["levels"], data["moonBag"]
    if not levels:
        issue((*path, "levels"), "At least one take-profit level is required in custom mode")
        return
    sold = sum((level["sellPercent"] for level in levels), Decimal(0))
    kept = moon_bag["retainPercent"] if moon_bag["enabled"] else Decimal(0)
    total = sold + kept
    if total > 100:
        issue(
            (*path, "levels"),
            f"Total allocation ({plain(total)}%) exceeds 100%. Sell levels total {plain(sold)}% + "
            f"moon bag {plain(kept)}% = {plain(total)}%",
        )
    for i in range(1, len(levels)):
        if levels[i]["targetPercent"] <= levels[i - 1]["targetPercent"]:
            issue(
                (*path, "levels", i),
                "Take-profit levels must be sorted by targetPercent ascending (each level higher than the previous)",
            )
    final = levels[-1]["targetPercent"]
    if moon_bag["enabled"] and moon_bag["triggerPercent"] > final:
        issue(
            (*path, "moonBag", "triggerPercent"),
            f"Moon bag trigger ({plain(moon_bag['triggerPercent'])}%) must be at or before the final "
            f"take-profit level ({plain(final)}%)",
        )


_LEVELS_MODES = ("aggressive", "moderate", "conservative", "custom")
_SIZE_RANGE = _Obj(
    {
        "min": _Num((_ge(0, "Minimum position size must be >= 0"),)),
        "max": _Num((_ge(0, "Maximum position size must be >= 0"),)),
    },
    _size_range_refine,
)

_SCHEMA = _Obj(
    {
        "purchaseLimits": _Obj(
            {
                "minimumAgentBalance": _Num((_ge("0.1", "Minimum agent balance must be at least 0.1 SOL"),)),
                "maxPurchasePerToken": _Num((_gt(0, "Max purchase per token must be positive"),)),
                "maxPriceImpact": _Num(
                    (
                        _ge(0, "Price impact must be between 0 and 1"),
                        _le(1, "Price impact must be between 0 and 1"),
                    ),
                    optional=True,
                ),
            }
        ),
        "signals": _Obj(
            {
                "minScore": _Num(
                    (_ge(1, "Minimum signal strength is 1"), _le(5, "Maximum signal strength is 5")),
                    integer="Signal strength must be a whole number",
                ),
                "allowedSignalTypes": _List(
                    _Str(
                        1,
                        50,
                        "String must contain at least 1 character(s)",
                        "String must contain at most 50 character(s)",
                    )
                ),
                "tokenFilterMode": _Enum(
                    ("none", "blacklist", "whitelist"), "Token filter mode must be none, blacklist, or whitelist"
                ),
                "tokenList": _List(_Str(32, 44, "Token address too short", "Token address too long")),
                "marketCapMin": _Num((_POSITIVE,), optional=True),
                "marketCapMax": _Num((_POSITIVE,), optional=True),
                "liquidityMin": _Num((_POSITIVE,), optional=True),
                "liquidityMax": _Num((_POSITIVE,), optional=True),
                "holderCountMin": _Num((_NON_NEGATIVE_INT,), optional=True, integer="Expected integer, received float"),
                "holderCountMax": _Num((_NON_NEGATIVE_INT,), optional=True, integer="Expected integer, received float"),
            },
            _pairs_refine,
        ),
        "stopLoss": _Obj(
            {
                "enabled": _Bool(),
                "defaultPercentage": _Num(
                    (
                        _ge(-100, "Default percentage must be between -100 and 0 (negative = loss from purchase)"),
                        _le(0, "Default percentage must be negative (loss-based)"),
                    )
                ),
                "mode": _Enum(
                    ("fixed", "exponential", "zones", "custom"),
                    "Stop loss mode must be fixed, exponential, zones, or custom",
                    default="fixed",
                ),
                "trailingLevels": _List(
                    _Obj(
                        {
                            "change": _Num((_gt(0, "Change must be positive"),)),
                            "stopLoss": _Num(
                                (
                                    _gt(0, "Stop loss must be positive (gain-based for trailing levels)"),
                                    _le(1000, "Stop loss cannot exceed 1000%"),
                                )
                            ),
                        }
                    )
                ),
            },
            _stop_loss_refine,
        ),
        "positionCalculator": _Obj(
            {
                "solBalanceThresholds": _Obj(
                    {
                        "minimum": _Num((_gt(0, "Minimum threshold must be positive"),)),
                        "medium": _Num((_gt(0, "Medium threshold must be positive"),)),
                        "large": _Num((_gt(0, "Large threshold must be positive"),)),
                    },
                    _thresholds_refine,
                ),
                "positionSizes": _Obj({"small": _SIZE_RANGE, "medium": _SIZE_RANGE, "large": _SIZE_RANGE}),
                "randomization": _Obj({"enabled": _Bool()}),
            }
        ),
        "staleTrade": _Obj(
            {
                "enabled": _Bool(),
                "minHoldTimeMinutes": _Num((_ge(1, "Minimum hold time must be at least 1 minute"),)),
                "minProfitPercent": _Num(),
                "maxProfitPercent": _Num(),
            },
            _stale_refine,
        ),
        "dca": _Obj(
            {
                "enabled": _Bool(),
                "mode": _Enum(
                    _LEVELS_MODES, "DCA mode must be aggressive, moderate, conservative, or custom", "moderate"
                ),
                "levels": _List(
                    _Obj(
                        {
                            "dropPercent": _Num(
                                (
                                    _le(-1, "Drop percent must be negative (at least -1%)"),
                                    _ge(-99, "Drop percent cannot exceed -99%"),
                                )
                            ),
                            "buyPercent": _Num(
                                (_ge(1, "Buy percent must be at least 1%"), _le(500, "Buy percent cannot exceed 500%"))
                            ),
                        }
                    )
                ),
                "maxDCACount": _Num(
                    (_ge(1, "Max DCA count must be at least 1"), _le(10, "Max DCA count cannot exceed 10"))
                ),
                "cooldownSeconds": _Num(
                    (_ge(10, "Cooldown must be at least 10 seconds"), _le(3600, "Cooldown cannot exceed 1 hour"))
                ),
            },
            _dca_refine,
        ),
        "takeProfit": _Obj(
            {
                "enabled": _Bool(),
                "mode": _Enum(
                    _LEVELS_MODES,
                    "Take-profit mode must be aggressive, moderate, conservative, or custom",
                    "moderate",
                ),
                "levels": _List(
                    _Obj(
                        {
                            "targetPercent": _Num(
                                (
                                    _ge(1, "Target percent must be at least 1%"),
                                    _le(10000, "Target percent cannot exceed 10000%"),
                                )
                            ),
                            "sellPercent": _Num(
                                (
                                    _ge(1, "Sell percent must be at least 1%"),
                                    _le(100, "Sell percent cannot exceed 100%"),
                                )
                            ),
                        }
                    ),
                    max_len=(10, "Cannot have more than 10 take-profit levels"),
                ),
                "moonBag": _Obj(
                    {
                        "enabled": _Bool(),
                        "triggerPercent": _Num(
                            (
                                _ge(1, "Trigger percent must be at least 1%"),
                                _le(10000, "Trigger percent cannot exceed 10000%"),
                            )
                        ),
                        "retainPercent": _Num(
                            (_ge(1, "Retain percent must be at least 1%"), _le(50, "Retain percent cannot exceed 50%"))
                        ),
                    }
                ),
            },
            _take_profit_refine,
        ),
    }
)


def _received(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number" if to_decimal(value) is not None else "nan"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.type_errors = 0

    def issue(self, path: tuple, message: str) -> None:
        self.errors.append(f"{'.'.join(map(str, path)) or 'root'}: {message}")

    def _bad_type(self, path: tuple, expected: str, value: Any) -> object:
        self.type_errors += 1
        self.issue(path, f"Expected {expected}, received {_received(value)}")
        return _INVALID

    def check(self, spec: Any, value: Any, path: tuple) -> Any:
        match spec:
            case _Num():
                number = None if isinstance(value, bool | str) else to_decimal(value)
                if number is None:
                    return self._bad_type(path, "number", value)
                if spec.integer and number != number.to_integral_value():
                    self.issue(path, spec.integer)
                for ok, message in spec.rules:
                    if not ok(number):
                        self.issue(path, message)
                return int(number) if spec.integer and number == number.to_integral_value() else number
            case _Bool():
                return value if isinstance(value, bool) else self._bad_type(path, "boolean", value)
            case _Enum():
                if isinstance(value, str) and value in spec.values:
                    return value
                self.type_errors += 1
                self.issue(path, spec.message)
                return _INVALID
            case _Str():
                if not isinstance(value, str):
                    return self._bad_type(path, "string", value)
                if len(value) < spec.min_len:
                    self.issue(path, spec.min_msg)
                if len(value) > spec.max_len:
                    self.issue(path, spec.max_msg)
                return value
            case _List():
                if not isinstance(value, list | tuple):
                    return self._bad_type(path, "array", value)
                if spec.max_len and len(value) > spec.max_len[0]:
                    self.issue(path, spec.max_len[1])
                before = self.type_errors
                items = [self.check(spec.item, item, (*path, i)) for i, item in enumerate(value)]
                return items if self.type_errors == before else _INVALID
            case _Obj():
                if not isinstance(value, dict):
                    return self._bad_type(path, "object", value)
                before = self.type_errors
                cleaned: dict[str, Any] = {}
                for key, field_spec in spec.fields.items():
                    if key in value:
                        cleaned[key] = self.check(field_spec, value[key], (*path, key))
                    elif isinstance(field_spec, _Enum) and field_spec.default is not None:
                        cleaned[key] = field_spec.default
                    elif not (isinstance(field_spec, _Num) and field_spec.optional):
                        self.type_errors += 1
                        self.issue((*path, key), "Required")
                if self.type_errors != before:
                    return _INVALID
                if spec.refine is not None:
                    spec.refine(cleaned, path, self.issue)
                return cleaned
        raise TypeError(f"unknown schema node {spec!r}")


@exact
def validate_config(merged: dict) -> AgentTradingConfig:
    """Validate a complete config; unknown keys are dropped. Raises :class:`InvalidConfig`."""
    validator = _Validator()
    cleaned = validator.check(_SCHEMA, merged, ())
    if validator.errors:
        raise InvalidConfig(validator.errors)
    return msgspec.convert(cleaned, AgentTradingConfig)


_DEFAULT = validate_config(DEFAULT_CONFIG_JSON)


def default_config() -> AgentTradingConfig:
    return _DEFAULT


# Validating a stored config takes about half a millisecond, and the worker needs the config of every agent
# for every signal and of every position on price ticks: configs are remembered by their canonical JSON (keys
# sorted; a Decimal written as the number it is, which validates exactly as that JSON number would).
CONFIG_CACHE_SIZE = 2048
_CANONICAL = msgspec.json.Encoder(order="sorted", decimal_format="number")
_loaded: dict[bytes, AgentTradingConfig] = {}


def load_config(stored: dict | None) -> AgentTradingConfig:
    """Effective config of an agent: its stored JSON (``agents.trading_config`` as decoded) merged onto the
    defaults (§2.3 step 1)."""
    if not isinstance(stored, dict):
        return _DEFAULT
    key = _CANONICAL.encode(stored)
    cfg = _loaded.get(key)
    if cfg is None:
        cfg = validate_config(_normalize(deep_merge(DEFAULT_CONFIG_JSON, stored)))  # raises, caching nothing
        if len(_loaded) >= CONFIG_CACHE_SIZE:
            del _loaded[next(iter(_loaded))]  # the oldest entry
        _loaded[key] = cfg
    return cfg


def apply_config_patch(current_stored: dict | None, patch: dict | None) -> tuple[AgentTradingConfig, dict | None]:
    """PUT/PATCH semantics (§2.3 step 2): ``(effective config, JSON to store)``.

    ``patch=None`` resets to the defaults and the column becomes NULL. Otherwise the patch is
    merged onto the current effective config and the *validated* config is what gets stored, so
    unknown keys never reach the database (api.md §7 [FIX]).
    """
    if patch is None:
        return _DEFAULT, None
    if not isinstance(patch, dict):
        raise InvalidConfig([f"root: Expected object, received {_received(patch)}"])
    base = deep_merge(DEFAULT_CONFIG_JSON, current_stored) if isinstance(current_stored, dict) else DEFAULT_CONFIG_JSON
    cfg = validate_config(_normalize(deep_merge(base, patch)))
    return cfg, config_to_json(cfg)


_ENCODER = msgspec.json.Encoder(decimal_format="number")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def encode_config(cfg: AgentTradingConfig) -> bytes:
    """JSON bytes with every number as a JSON number."""
    return _ENCODER.encode(cfg)


def config_to_json(cfg: AgentTradingConfig) -> dict:
    """Plain JSON-ready dict: camelCase keys, lists, ints and Decimals (encode Decimals as numbers),
    absent bounds omitted."""
    return _DECODER.decode(encode_config(cfg))


# --------------------------------------------------------------------------------------------------
# Effective levels


def _dca_levels(*pairs: tuple[int, int]) -> tuple[DcaLevel, ...]:
    return tuple(DcaLevel(drop_percent=Decimal(d), buy_percent=Decimal(b)) for d, b in pairs)


def _tp_levels(*pairs: tuple[int, int]) -> tuple[TakeProfitLevel, ...]:
    return tuple(TakeProfitLevel(target_percent=Decimal(t), sell_percent=Decimal(s)) for t, s in pairs)


def _moon_bag(trigger: int, retain: int) -> MoonBagConfig:
    return MoonBagConfig(enabled=True, trigger_percent=Decimal(trigger), retain_percent=Decimal(retain))


DCA_TEMPLATES: dict[str, tuple[DcaLevel, ...]] = {
    "aggressive": _dca_levels((-10, 100), (-10, 100), (-10, 100)),
    "moderate": _dca_levels((-20, 75), (-20, 75)),
    "conservative": _dca_levels((-20, 100)),
}

TAKE_PROFIT_TEMPLATES: dict[str, tuple[tuple[TakeProfitLevel, ...], MoonBagConfig]] = {
    "aggressive": (_tp_levels((25, 25), (50, 25), (100, 25), (150, 15)), _moon_bag(100, 10)),
    "moderate": (_tp_levels((50, 25), (150, 25), (300, 25), (400, 15)), _moon_bag(300, 10)),
    "conservative": (_tp_levels((100, 20), (200, 20), (400, 25), (600, 20)), _moon_bag(400, 15)),
}


def effective_dca_levels(dca: DcaConfig) -> tuple[DcaLevel, ...]:
    """Template levels for preset modes; custom levels least-negative first (stable) (§7.1)."""
    if dca.mode == "custom":
        return tuple(sorted(dca.levels, key=lambda level: level.drop_percent, reverse=True))
    return DCA_TEMPLATES[dca.mode]


def effective_take_profit_levels(tp: TakeProfitConfig) -> tuple[TakeProfitLevel, ...]:
    """Levels the take-profit evaluator walks.

    Deliberate fix of §6.1/§16.16: upstream always runs ``takeProfit.levels`` whatever the mode,
    so ``mode: "aggressive"`` silently executed the stored (default moderate) list. Here a preset
    mode runs its template and only ``custom`` runs ``takeProfit.levels``. With the defaults
    (moderate + the moderate list) the behaviour is identical.
    """
    if tp.mode == "custom":
        return tp.levels
    return TAKE_PROFIT_TEMPLATES[tp.mode][0]


def effective_moon_bag(tp: TakeProfitConfig) -> MoonBagConfig:
    """Moon bag that goes with :func:`effective_take_profit_levels` (template for preset modes)."""
    if tp.mode == "custom":
        return tp.moon_bag
    return TAKE_PROFIT_TEMPLATES[tp.mode][1]
