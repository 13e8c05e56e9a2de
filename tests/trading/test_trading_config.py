import copy
from decimal import Decimal as D

import msgspec
import pytest

from app.trading.config import (
    DEFAULT_CONFIG_JSON,
    AgentTradingConfig,
    InvalidConfig,
    apply_config_patch,
    config_to_json,
    deep_merge,
    default_config,
    effective_dca_levels,
    effective_moon_bag,
    effective_take_profit_levels,
    encode_config,
    load_config,
    validate_config,
)

T1, T2, T3 = "A" * 32, "B" * 40, "C" * 44


def errors_of(patch: dict, stored: dict | None = None) -> list[str]:
    with pytest.raises(InvalidConfig) as info:
        apply_config_patch(stored, patch)
    assert str(info.value) == "Invalid trading configuration"
    assert info.value.code == "INVALID_CONFIG"
    return info.value.errors


# --- defaults --------------------------------------------------------------------------------------


def test_defaults_match_spec():
    cfg = default_config()
    assert cfg.purchase_limits.minimum_agent_balance == D("0.5")
    assert cfg.purchase_limits.max_purchase_per_token == D("2.0")
    assert cfg.purchase_limits.max_price_impact == D("0.05")
    assert cfg.signals.min_score == 1 and cfg.signals.allowed_signal_types == ()
    assert cfg.signals.token_filter_mode == "none" and not cfg.signals.has_metric_bounds
    assert (cfg.stop_loss.enabled, cfg.stop_loss.default_percentage, cfg.stop_loss.mode) == (True, D(-32), "fixed")
    t = cfg.position_calculator.sol_balance_thresholds
    assert (t.minimum, t.medium, t.large) == (D("0.2"), D(5), D(10))
    s = cfg.position_calculator.position_sizes
    assert (s.small.min, s.small.max, s.medium.min, s.medium.max, s.large.min, s.large.max) == (
        D("0.1"), D("0.1"), D("0.5"), D("1.0"), D("1.5"), D("2.0"),
    )  # fmt: skip
    assert cfg.position_calculator.randomization.enabled is True
    st = cfg.stale_trade
    assert (st.enabled, st.min_hold_time_minutes, st.min_profit_percent, st.max_profit_percent) == (True, 60, 1, 10)
    assert (cfg.dca.enabled, cfg.dca.mode, cfg.dca.levels, cfg.dca.max_dca_count, cfg.dca.cooldown_seconds) == (
        False, "moderate", (), 3, 30,
    )  # fmt: skip
    tp = cfg.take_profit
    assert (tp.enabled, tp.mode) == (False, "moderate")
    assert [(lv.target_percent, lv.sell_percent) for lv in tp.levels] == [(50, 25), (150, 25), (300, 25), (400, 15)]
    assert (tp.moon_bag.enabled, tp.moon_bag.trigger_percent, tp.moon_bag.retain_percent) == (True, 300, 10)


def test_null_or_non_object_stored_config_means_defaults():
    assert load_config(None) == default_config()
    assert load_config("nonsense") == default_config()  # type: ignore[arg-type]
    assert load_config({}) == default_config()


def test_json_uses_spec_field_names_and_numbers():
    cfg = default_config()
    assert config_to_json(cfg) == DEFAULT_CONFIG_JSON
    decoded = msgspec.json.decode(encode_config(cfg))
    assert decoded["purchaseLimits"] == {"minimumAgentBalance": 0.5, "maxPurchasePerToken": 2.0, "maxPriceImpact": 0.05}
    assert decoded["dca"]["maxDCACount"] == 3
    assert "marketCapMin" not in decoded["signals"]
    assert set(decoded) == {
        "purchaseLimits", "signals", "stopLoss", "positionCalculator", "staleTrade", "dca", "takeProfit",
    }  # fmt: skip


def test_json_numbers_decode_exactly():
    raw = b'{"purchaseLimits": {"maxPriceImpact": 0.07, "minimumAgentBalance": 0.3}}'
    as_floats = load_config(msgspec.json.decode(raw))
    as_decimals = load_config(msgspec.json.Decoder(float_hook=D).decode(raw))
    assert as_floats.purchase_limits.max_price_impact == D("0.07") == as_decimals.purchase_limits.max_price_impact
    assert as_floats.purchase_limits.minimum_agent_balance == D("0.3")


def test_loaded_configs_are_remembered_by_content_not_by_identity(monkeypatch):
    import app.trading.config as config_module

    validations = []
    real = config_module.validate_config
    monkeypatch.setattr(config_module, "validate_config", lambda merged: validations.append(1) or real(merged))
    monkeypatch.setattr(config_module, "_loaded", {})
    stored = {"purchaseLimits": {"maxPriceImpact": 0.07}, "stopLoss": {"defaultPercentage": -20}}
    first = load_config(stored)
    # The same content in another key order and another object: validated once.
    again = load_config({"stopLoss": {"defaultPercentage": -20}, "purchaseLimits": {"maxPriceImpact": 0.07}})
    assert again is first and len(validations) == 1
    # A Decimal is the JSON number it writes as; a string is not a number.
    assert (
        load_config({"purchaseLimits": {"maxPriceImpact": D("0.07")}, "stopLoss": {"defaultPercentage": -20}}) is first
    )
    with pytest.raises(InvalidConfig):
        load_config({"purchaseLimits": {"maxPriceImpact": "0.07"}})
    with pytest.raises(InvalidConfig):  # a failure is not remembered
        load_config({"purchaseLimits": {"maxPriceImpact": "0.07"}})
    assert len(validations) == 3
    other = load_config({"stopLoss": {"defaultPercentage": -21}})
    assert other.stop_loss.default_percentage == D(-21) and first.stop_loss.default_percentage == D(-20)


def test_config_memory_is_bounded(monkeypatch):
    import app.trading.config as config_module

    monkeypatch.setattr(config_module, "_loaded", {})
    monkeypatch.setattr(config_module, "CONFIG_CACHE_SIZE", 3)
    for minutes in range(1, 6):
        assert load_config({"staleTrade": {"minHoldTimeMinutes": minutes}}).stale_trade.min_hold_time_minutes == minutes
    assert len(config_module._loaded) == 3


# --- merge -----------------------------------------------------------------------------------------


def test_deep_merge_objects_recurse_arrays_and_null_replace():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"k": 1}}, "b": 2}
    overlay = {"a": {"y": [3], "z": None, "new": True}, "c": 3}
    merged = deep_merge(base, overlay)
    assert merged == {"a": {"x": 1, "y": [3], "z": None, "new": True}, "b": 2, "c": 3}
    assert base == {"a": {"x": 1, "y": [1, 2], "z": {"k": 1}}, "b": 2}  # untouched
    merged["a"]["y"].append(9)
    assert overlay["a"]["y"] == [3]  # no shared structure


def test_stored_partial_merges_onto_defaults():
    cfg = load_config({"purchaseLimits": {"maxPurchasePerToken": 10}})
    assert cfg.purchase_limits.max_purchase_per_token == 10
    assert cfg.purchase_limits.minimum_agent_balance == D("0.5")
    assert cfg.purchase_limits.max_price_impact == D("0.05")
    assert cfg.stop_loss == default_config().stop_loss


def test_stored_array_replaces_default_array():
    cfg = load_config({"stopLoss": {"trailingLevels": [{"change": 50, "stopLoss": 90}]}})
    assert [(lv.change, lv.stop_loss) for lv in cfg.stop_loss.trailing_levels] == [(50, 90)]
    assert cfg.stop_loss.enabled is True and cfg.stop_loss.default_percentage == -32


def test_patch_merges_keys_and_replaces_lists():
    stored = {"signals": {"minScore": 3, "tokenList": [T1]}}
    cfg, persisted = apply_config_patch(stored, {"signals": {"minScore": 5}})
    assert cfg.signals.min_score == 5 and cfg.signals.token_list == (T1,)
    cfg, _ = apply_config_patch({"signals": {"tokenList": [T1, T2]}}, {"signals": {"tokenList": [T3]}})
    assert cfg.signals.token_list == (T3,)
    assert load_config(persisted) == apply_config_patch(stored, {"signals": {"minScore": 5}})[0]


def test_patch_null_clears_metric_bound():
    stored = {"signals": {"marketCapMin": 1000, "holderCountMax": 50}}
    assert load_config(stored).signals.market_cap_min == 1000
    cfg, persisted = apply_config_patch(stored, {"signals": {"marketCapMin": None}})
    assert cfg.signals.market_cap_min is None and cfg.signals.holder_count_max == 50
    assert "marketCapMin" not in persisted["signals"] and persisted["signals"]["holderCountMax"] == 50


def test_patch_none_resets_to_defaults():
    cfg, persisted = apply_config_patch({"purchaseLimits": {"maxPurchasePerToken": 10}}, None)
    assert cfg == default_config() and persisted is None


def test_persisted_json_is_the_whole_parsed_config_without_unknown_keys():
    cfg, persisted = apply_config_patch(
        {"junk": 1, "dca": {"extra": "x"}}, {"stopLoss": {"continuousTrailing": {"on": True}, "whatever": 2}}
    )
    assert persisted == config_to_json(cfg)
    assert "junk" not in persisted and "extra" not in persisted["dca"]
    assert "continuousTrailing" not in persisted["stopLoss"] and "whatever" not in persisted["stopLoss"]
    assert msgspec.json.Decoder(float_hook=D).decode(encode_config(load_config(persisted))) == persisted


def test_load_drops_continuous_trailing_and_defaults_falsy_mode():
    cfg = load_config({"stopLoss": {"continuousTrailing": {"enabled": True}, "mode": ""}})
    assert cfg.stop_loss.mode == "fixed"
    assert load_config({"stopLoss": {"mode": None}}).stop_loss.mode == "fixed"


def test_patch_must_be_an_object():
    assert errors_of(["x"]) == ["root: Expected object, received array"]  # type: ignore[arg-type]


# --- validation ------------------------------------------------------------------------------------

RULES = [
    # (patch, expected error or None)
    ({"purchaseLimits": {"minimumAgentBalance": 0.1}}, None),
    ({"purchaseLimits": {"minimumAgentBalance": 0.09}},
     "purchaseLimits.minimumAgentBalance: Minimum agent balance must be at least 0.1 SOL"),
    ({"purchaseLimits": {"maxPurchasePerToken": 0.001}}, None),
    ({"purchaseLimits": {"maxPurchasePerToken": 0}},
     "purchaseLimits.maxPurchasePerToken: Max purchase per token must be positive"),
    ({"purchaseLimits": {"maxPriceImpact": 0}}, None),
    ({"purchaseLimits": {"maxPriceImpact": 1}}, None),
    ({"purchaseLimits": {"maxPriceImpact": 1.5}}, "purchaseLimits.maxPriceImpact: Price impact must be between 0 and 1"),
    ({"purchaseLimits": {"maxPriceImpact": -0.1}}, "purchaseLimits.maxPriceImpact: Price impact must be between 0 and 1"),
    ({"signals": {"minScore": 5}}, None),
    ({"signals": {"minScore": 0}}, "signals.minScore: Minimum signal strength is 1"),
    ({"signals": {"minScore": 6}}, "signals.minScore: Maximum signal strength is 5"),
    ({"signals": {"minScore": 2.5}}, "signals.minScore: Signal strength must be a whole number"),
    ({"signals": {"allowedSignalTypes": ["x" * 50]}}, None),
    ({"signals": {"allowedSignalTypes": [""]}},
     "signals.allowedSignalTypes.0: String must contain at least 1 character(s)"),
    ({"signals": {"allowedSignalTypes": ["x" * 51]}},
     "signals.allowedSignalTypes.0: String must contain at most 50 character(s)"),
    ({"signals": {"tokenFilterMode": "whitelist"}}, None),
    ({"signals": {"tokenFilterMode": "grey"}},
     "signals.tokenFilterMode: Token filter mode must be none, blacklist, or whitelist"),
    ({"signals": {"tokenList": [T1, T3]}}, None),
    ({"signals": {"tokenList": ["A" * 31]}}, "signals.tokenList.0: Token address too short"),
    ({"signals": {"tokenList": [T1, "A" * 45]}}, "signals.tokenList.1: Token address too long"),
    ({"signals": {"marketCapMin": 1, "liquidityMax": 5}}, None),
    ({"signals": {"marketCapMin": 0}}, "signals.marketCapMin: Number must be greater than 0"),
    ({"signals": {"liquidityMax": -5}}, "signals.liquidityMax: Number must be greater than 0"),
    ({"signals": {"holderCountMin": 0}}, None),
    ({"signals": {"holderCountMin": -1}}, "signals.holderCountMin: Number must be greater than or equal to 0"),
    ({"signals": {"holderCountMax": 1.5}}, "signals.holderCountMax: Expected integer, received float"),
    ({"signals": {"marketCapMin": 5, "marketCapMax": 5}}, None),
    ({"signals": {"marketCapMin": 10, "marketCapMax": 5}}, "signals.marketCapMax: Minimum market cap must be ≤ maximum"),
    ({"signals": {"liquidityMin": 10, "liquidityMax": 5}}, "signals.liquidityMax: Minimum liquidity must be ≤ maximum"),
    ({"signals": {"holderCountMin": 10, "holderCountMax": 5}},
     "signals.holderCountMax: Minimum holder count must be ≤ maximum"),
    ({"stopLoss": {"enabled": False}}, None),
    ({"stopLoss": {"enabled": "yes"}}, "stopLoss.enabled: Expected boolean, received string"),
    ({"stopLoss": {"defaultPercentage": -100}}, None),
    ({"stopLoss": {"defaultPercentage": 0}}, None),
    ({"stopLoss": {"defaultPercentage": -101}},
     "stopLoss.defaultPercentage: Default percentage must be between -100 and 0 (negative = loss from purchase)"),
    ({"stopLoss": {"defaultPercentage": 1}}, "stopLoss.defaultPercentage: Default percentage must be negative (loss-based)"),
    ({"stopLoss": {"mode": "zones"}}, None),
    ({"stopLoss": {"mode": "trailing"}}, "stopLoss.mode: Stop loss mode must be fixed, exponential, zones, or custom"),
    ({"stopLoss": {"trailingLevels": [{"change": 0, "stopLoss": 5}]}},
     "stopLoss.trailingLevels.0.change: Change must be positive"),
    ({"stopLoss": {"trailingLevels": [{"change": 10, "stopLoss": 1000}]}}, None),
    ({"stopLoss": {"trailingLevels": [{"change": 10, "stopLoss": 1001}]}},
     "stopLoss.trailingLevels.0.stopLoss: Stop loss cannot exceed 1000%"),
    ({"stopLoss": {"trailingLevels": [{"change": 10, "stopLoss": 0}]}},
     "stopLoss.trailingLevels.0.stopLoss: Stop loss must be positive (gain-based for trailing levels)"),
    ({"stopLoss": {"mode": "custom", "trailingLevels": []}},
     "stopLoss.trailingLevels: Trailing levels cannot be empty when mode is custom and stop loss is enabled"),
    ({"stopLoss": {"mode": "custom", "enabled": False, "trailingLevels": []}}, None),
    ({"stopLoss": {"mode": "custom", "trailingLevels": [{"change": 100, "stopLoss": 95}, {"change": 50, "stopLoss": 90}]}},
     None),
    ({"stopLoss": {"mode": "custom", "trailingLevels": [{"change": 50, "stopLoss": 90}, {"change": 100, "stopLoss": 95}]}},
     "stopLoss.trailingLevels.1: Trailing levels must be sorted descending by change (required for custom mode)"),
    ({"stopLoss": {"mode": "custom", "trailingLevels": [{"change": 50, "stopLoss": 90}, {"change": 50, "stopLoss": 95}]}},
     "stopLoss.trailingLevels.1: Trailing levels must be sorted descending by change (required for custom mode)"),
    ({"stopLoss": {"mode": "fixed", "trailingLevels": [{"change": 50, "stopLoss": 90}, {"change": 100, "stopLoss": 95}]}},
     None),
    ({"positionCalculator": {"solBalanceThresholds": {"minimum": 0}}},
     "positionCalculator.solBalanceThresholds.minimum: Minimum threshold must be positive"),
    ({"positionCalculator": {"solBalanceThresholds": {"minimum": 5}}},
     "positionCalculator.solBalanceThresholds: Minimum threshold must be < medium threshold"),
    ({"positionCalculator": {"solBalanceThresholds": {"medium": 20}}},
     "positionCalculator.solBalanceThresholds: Medium threshold must be < large threshold"),
    ({"positionCalculator": {"solBalanceThresholds": {"large": -1}}},
     "positionCalculator.solBalanceThresholds.large: Large threshold must be positive"),
    ({"positionCalculator": {"positionSizes": {"small": {"min": 0, "max": 0}}}}, None),
    ({"positionCalculator": {"positionSizes": {"small": {"min": -1}}}},
     "positionCalculator.positionSizes.small.min: Minimum position size must be >= 0"),
    ({"positionCalculator": {"positionSizes": {"large": {"max": -1}}}},
     "positionCalculator.positionSizes.large.max: Maximum position size must be >= 0"),
    ({"positionCalculator": {"positionSizes": {"medium": {"min": 2, "max": 1}}}},
     "positionCalculator.positionSizes.medium: Minimum position size must be <= maximum position size"),
    ({"positionCalculator": {"randomization": {"enabled": 1}}},
     "positionCalculator.randomization.enabled: Expected boolean, received number"),
    ({"staleTrade": {"minHoldTimeMinutes": 1}}, None),
    ({"staleTrade": {"minHoldTimeMinutes": 0.5}}, "staleTrade.minHoldTimeMinutes: Minimum hold time must be at least 1 minute"),
    ({"staleTrade": {"minProfitPercent": -5, "maxProfitPercent": -1}}, None),
    ({"staleTrade": {"minProfitPercent": 10, "maxProfitPercent": 1}},
     "staleTrade.maxProfitPercent: Minimum profit/loss must be less than or equal to maximum profit/loss"),
    ({"dca": {"levels": [{"dropPercent": -1, "buyPercent": 1}, {"dropPercent": -99, "buyPercent": 500}]}}, None),
    ({"dca": {"levels": [{"dropPercent": -0.5, "buyPercent": 50}]}},
     "dca.levels.0.dropPercent: Drop percent must be negative (at least -1%)"),
    ({"dca": {"levels": [{"dropPercent": -100, "buyPercent": 50}]}}, "dca.levels.0.dropPercent: Drop percent cannot exceed -99%"),
    ({"dca": {"levels": [{"dropPercent": -10, "buyPercent": 0.5}]}}, "dca.levels.0.buyPercent: Buy percent must be at least 1%"),
    ({"dca": {"levels": [{"dropPercent": -10, "buyPercent": 501}]}}, "dca.levels.0.buyPercent: Buy percent cannot exceed 500%"),
    ({"dca": {"maxDCACount": 10}}, None),
    ({"dca": {"maxDCACount": 2.5}}, None),  # not forced to an integer, as upstream
    ({"dca": {"maxDCACount": 0}}, "dca.maxDCACount: Max DCA count must be at least 1"),
    ({"dca": {"maxDCACount": 11}}, "dca.maxDCACount: Max DCA count cannot exceed 10"),
    ({"dca": {"cooldownSeconds": 10}}, None),
    ({"dca": {"cooldownSeconds": 3600}}, None),
    ({"dca": {"cooldownSeconds": 5}}, "dca.cooldownSeconds: Cooldown must be at least 10 seconds"),
    ({"dca": {"cooldownSeconds": 3601}}, "dca.cooldownSeconds: Cooldown cannot exceed 1 hour"),
    ({"dca": {"mode": "yolo"}}, "dca.mode: DCA mode must be aggressive, moderate, conservative, or custom"),
    ({"dca": {"enabled": True, "mode": "custom", "levels": []}},
     "dca.levels: DCA levels cannot be empty when mode is custom and DCA is enabled"),
    ({"dca": {"enabled": False, "mode": "custom", "levels": []}}, None),
    ({"dca": {"mode": "custom", "levels": [{"dropPercent": -20, "buyPercent": 50}, {"dropPercent": -20, "buyPercent": 50}]}},
     None),
    ({"dca": {"mode": "custom", "levels": [{"dropPercent": -30, "buyPercent": 50}, {"dropPercent": -20, "buyPercent": 50}]}},
     "dca.levels.1: DCA levels must be sorted by dropPercent (least negative first; e.g. -20 before -30)"),
    ({"takeProfit": {"levels": [{"targetPercent": 1, "sellPercent": 100}]}}, None),
    ({"takeProfit": {"levels": [{"targetPercent": 0.5, "sellPercent": 10}]}},
     "takeProfit.levels.0.targetPercent: Target percent must be at least 1%"),
    ({"takeProfit": {"levels": [{"targetPercent": 10001, "sellPercent": 10}]}},
     "takeProfit.levels.0.targetPercent: Target percent cannot exceed 10000%"),
    ({"takeProfit": {"levels": [{"targetPercent": 10, "sellPercent": 0}]}},
     "takeProfit.levels.0.sellPercent: Sell percent must be at least 1%"),
    ({"takeProfit": {"levels": [{"targetPercent": 10, "sellPercent": 101}]}},
     "takeProfit.levels.0.sellPercent: Sell percent cannot exceed 100%"),
    ({"takeProfit": {"levels": [{"targetPercent": i + 1, "sellPercent": 1} for i in range(10)]}}, None),
    ({"takeProfit": {"levels": [{"targetPercent": i + 1, "sellPercent": 1} for i in range(11)]}},
     "takeProfit.levels: Cannot have more than 10 take-profit levels"),
    ({"takeProfit": {"mode": "x"}}, "takeProfit.mode: Take-profit mode must be aggressive, moderate, conservative, or custom"),
    ({"takeProfit": {"moonBag": {"triggerPercent": 0.5}}}, "takeProfit.moonBag.triggerPercent: Trigger percent must be at least 1%"),
    ({"takeProfit": {"moonBag": {"triggerPercent": 10001}}},
     "takeProfit.moonBag.triggerPercent: Trigger percent cannot exceed 10000%"),
    ({"takeProfit": {"moonBag": {"retainPercent": 50}}}, None),
    ({"takeProfit": {"moonBag": {"retainPercent": 0.5}}}, "takeProfit.moonBag.retainPercent: Retain percent must be at least 1%"),
    ({"takeProfit": {"moonBag": {"retainPercent": 51}}}, "takeProfit.moonBag.retainPercent: Retain percent cannot exceed 50%"),
    ({"takeProfit": {"moonBag": {"enabled": "no"}}}, "takeProfit.moonBag.enabled: Expected boolean, received string"),
    ({"takeProfit": {"mode": "custom", "levels": []}},
     "takeProfit.levels: At least one take-profit level is required in custom mode"),
    ({"takeProfit": {"mode": "custom", "moonBag": {"enabled": True, "triggerPercent": 100, "retainPercent": 10},
                     "levels": [{"targetPercent": 50, "sellPercent": 45}, {"targetPercent": 100, "sellPercent": 45}]}},
     None),
    ({"takeProfit": {"mode": "custom", "levels": [{"targetPercent": 50, "sellPercent": 60}, {"targetPercent": 400, "sellPercent": 40}]}},
     "takeProfit.levels: Total allocation (110%) exceeds 100%. Sell levels total 100% + moon bag 10% = 110%"),
    ({"takeProfit": {"mode": "custom", "moonBag": {"enabled": False},
                     "levels": [{"targetPercent": 50, "sellPercent": 60}, {"targetPercent": 100, "sellPercent": 40}]}},
     None),
    ({"takeProfit": {"mode": "custom", "levels": [{"targetPercent": 400, "sellPercent": 25}, {"targetPercent": 300, "sellPercent": 25}]}},
     "takeProfit.levels.1: Take-profit levels must be sorted by targetPercent ascending (each level higher than the previous)"),
    ({"takeProfit": {"mode": "custom", "levels": [{"targetPercent": 50, "sellPercent": 25}, {"targetPercent": 100, "sellPercent": 25}]}},
     "takeProfit.moonBag.triggerPercent: Moon bag trigger (300%) must be at or before the final take-profit level (100%)"),
]  # fmt: skip


@pytest.mark.parametrize(("patch", "expected"), RULES)
def test_validation_rule(patch, expected):
    if expected is None:
        cfg, persisted = apply_config_patch(None, patch)
        assert isinstance(cfg, AgentTradingConfig)
        assert load_config(persisted) == cfg
    else:
        assert expected in errors_of(patch)


def test_custom_take_profit_rules_apply_even_when_disabled():
    patch = {"takeProfit": {"enabled": False, "mode": "custom", "levels": []}}
    assert errors_of(patch) == ["takeProfit.levels: At least one take-profit level is required in custom mode"]


def test_every_bad_field_is_reported():
    errors = errors_of(
        {
            "purchaseLimits": {"minimumAgentBalance": 0},
            "signals": {"minScore": True, "tokenList": "x"},
            "dca": {"cooldownSeconds": 5, "maxDCACount": 0},
            "takeProfit": {"moonBag": {"retainPercent": 60}},
        }
    )
    assert errors == [
        "purchaseLimits.minimumAgentBalance: Minimum agent balance must be at least 0.1 SOL",
        "signals.minScore: Expected number, received boolean",
        "signals.tokenList: Expected array, received string",
        "dca.maxDCACount: Max DCA count must be at least 1",
        "dca.cooldownSeconds: Cooldown must be at least 10 seconds",
        "takeProfit.moonBag.retainPercent: Retain percent cannot exceed 50%",
    ]


@pytest.mark.parametrize(
    ("value", "received"),
    [("5", "string"), (True, "boolean"), (None, "null"), ([1], "array"), ({"a": 1}, "object"), (float("nan"), "nan")],
)
def test_type_errors_become_invalid_config(value, received):
    assert errors_of({"purchaseLimits": {"maxPurchasePerToken": value}}) == [
        f"purchaseLimits.maxPurchasePerToken: Expected number, received {received}"
    ]


def test_section_of_wrong_type_and_missing_keys():
    assert errors_of({"dca": [1, 2]}) == ["dca: Expected object, received array"]
    bad = copy.deepcopy(DEFAULT_CONFIG_JSON)
    del bad["staleTrade"]["enabled"]
    del bad["takeProfit"]
    with pytest.raises(InvalidConfig) as info:
        validate_config(bad)
    assert info.value.errors == ["staleTrade.enabled: Required", "takeProfit: Required"]
    with pytest.raises(InvalidConfig) as info:
        validate_config([])  # type: ignore[arg-type]
    assert info.value.errors == ["root: Expected object, received array"]


def test_missing_modes_take_their_defaults():
    merged = copy.deepcopy(DEFAULT_CONFIG_JSON)
    del merged["stopLoss"]["mode"], merged["dca"]["mode"], merged["takeProfit"]["mode"]
    cfg = validate_config(merged)
    assert (cfg.stop_loss.mode, cfg.dca.mode, cfg.take_profit.mode) == ("fixed", "moderate", "moderate")


def test_cross_field_rules_wait_for_well_typed_fields():
    # the threshold ordering cannot be judged while a threshold is not a number
    errors = errors_of({"positionCalculator": {"solBalanceThresholds": {"medium": "x", "large": 1}}})
    assert errors == ["positionCalculator.solBalanceThresholds.medium: Expected number, received string"]


def test_stored_config_with_a_string_level_fails_to_load():
    with pytest.raises(InvalidConfig) as info:
        load_config({"stopLoss": {"mode": "custom", "trailingLevels": [{"change": "x", "stopLoss": 90}]}})
    assert info.value.errors == ["stopLoss.trailingLevels.0.change: Expected number, received string"]


def test_max_price_impact_null_is_rejected_like_upstream():
    # Only the six metric bounds treat null as "unset"; the price-impact default would come back anyway.
    assert errors_of({"purchaseLimits": {"maxPriceImpact": None}}) == [
        "purchaseLimits.maxPriceImpact: Expected number, received null"
    ]


# --- effective levels ------------------------------------------------------------------------------


def levels_of(cfg_patch: dict):
    cfg, _ = apply_config_patch(None, cfg_patch)
    return cfg


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("aggressive", [(-10, 100), (-10, 100), (-10, 100)]),
        ("moderate", [(-20, 75), (-20, 75)]),
        ("conservative", [(-20, 100)]),
    ],
)
def test_dca_templates(mode, expected):
    cfg = levels_of({"dca": {"mode": mode, "levels": [{"dropPercent": -50, "buyPercent": 10}]}})
    assert [(lv.drop_percent, lv.buy_percent) for lv in effective_dca_levels(cfg.dca)] == expected


def test_custom_dca_levels_sorted_least_negative_first():
    cfg = validate_config(
        deep_merge(
            DEFAULT_CONFIG_JSON,
            {"dca": {"levels": [{"dropPercent": d, "buyPercent": 50} for d in (-30, -10, -20)]}},
        )
    )
    custom = msgspec.structs.replace(cfg.dca, mode="custom")
    assert [lv.drop_percent for lv in effective_dca_levels(custom)] == [-10, -20, -30]


def test_take_profit_presets_use_their_templates():
    # Our fix of §16.16: upstream ran takeProfit.levels (the moderate list) for every mode.
    cfg = levels_of({"takeProfit": {"mode": "aggressive"}})
    assert [(lv.target_percent, lv.sell_percent) for lv in effective_take_profit_levels(cfg.take_profit)] == [
        (25, 25), (50, 25), (100, 25), (150, 15),
    ]  # fmt: skip
    assert effective_moon_bag(cfg.take_profit).trigger_percent == 100
    cfg = levels_of({"takeProfit": {"mode": "conservative"}})
    assert [lv.target_percent for lv in effective_take_profit_levels(cfg.take_profit)] == [100, 200, 400, 600]
    assert (effective_moon_bag(cfg.take_profit).trigger_percent, effective_moon_bag(cfg.take_profit).retain_percent) == (
        400, 15,
    )  # fmt: skip
    custom_levels = [{"targetPercent": 20, "sellPercent": 50}, {"targetPercent": 40, "sellPercent": 40}]
    cfg = levels_of({"takeProfit": {"mode": "custom", "levels": custom_levels, "moonBag": {"triggerPercent": 30}}})
    assert [lv.target_percent for lv in effective_take_profit_levels(cfg.take_profit)] == [20, 40]
    assert effective_moon_bag(cfg.take_profit).trigger_percent == 30
    assert effective_take_profit_levels(default_config().take_profit) == default_config().take_profit.levels
