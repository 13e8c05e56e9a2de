"""Figures of the four trade kinds, from raw swap amounts to the values stored (domain §4.3–§4.7).

Inputs are what the swap layer reports: raw integer amounts, token decimals, the fees of
:func:`app.trading.fees.extract_jupiter_fees` and the SOL/USD rate (``None`` when unknown: USD
values are then ``None`` and the caller decides, we never invent a rate, §16.21). :func:`buy_fill` /
:func:`sell_fill` turn them into the figures of one swap, and the ``plan_*`` functions turn those
into the position's figures. Outputs are already quantized to their column scales
(:mod:`app.trading.ledger`), so what is stored is what the P/L was computed from.

Fee rule (see :mod:`app.trading.ledger`): a buy row's ``input_amount`` is the gross SOL spent,
protocol fee included: ``totalInputAmount`` when the live swap reports it, else the swapped SOL plus
the protocol fee, which is how simulation now charges it (§16.5). A sell row's ``output_amount`` is
the SOL received net of the protocol fee (``totalOutputAmount`` or swapped SOL minus the fee). The
network fee is debited separately. P/L is cash flow: ``total_invested_sol`` is every SOL debit of
the position, and proceeds are exactly the SOL credited, so after a close the SOL balance moved by
exactly the realized P/L (up to the 8-decimal rounding of ``total_invested_sol``).

Purchase price stays fee-exclusive (swapped SOL / tokens) as upstream does; after a DCA the average
is ``total_invested_sol / purchase_amount``, fee-inclusive, also as upstream does (§4.7).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from app.trading._num import HUNDRED, ZERO, exact
from app.trading.config import AgentTradingConfig, effective_take_profit_levels
from app.trading.errors import TradeError
from app.trading.ledger import AMOUNT_18, PCT_4, SOL_8, quantize, quantize_opt
from app.trading.position import PositionState
from app.trading.stop_loss import StopLossReset, initial_stop_loss, reset_after_dca
from app.trading.take_profit import TakeProfitDecision
from app.trading.units import from_raw, lamports_to_sol

TAKE_PROFIT_DUST = Decimal("1e-9")


class BuyFill(msgspec.Struct, frozen=True, kw_only=True):
    in_sol: Decimal  # SOL actually swapped, fees excluded
    input_amount: Decimal  # row input_amount: gross SOL spent, protocol fee included
    output_amount: Decimal  # tokens received (row output_amount)
    price: Decimal  # in_sol / output_amount (row output_price)
    protocol_fee_sol: Decimal | None
    network_fee_sol: Decimal | None
    debit_sol: Decimal  # input_amount + network fee: what leaves the SOL balance
    value_usd: Decimal | None


class SellFill(msgspec.Struct, frozen=True, kw_only=True):
    input_amount: Decimal  # tokens sold (row input_amount)
    out_sol: Decimal  # SOL the swap produced before the protocol fee
    output_amount: Decimal  # row output_amount: SOL received net of the protocol fee
    price: Decimal  # out_sol / tokens (row input_price)
    protocol_fee_sol: Decimal | None
    network_fee_sol: Decimal | None
    credit_sol: Decimal  # output_amount − network fee: what reaches the SOL balance
    value_usd: Decimal | None


class HistoryFigures(msgspec.Struct, frozen=True, kw_only=True):
    """Money columns of an ``agent_historical_swaps`` row."""

    amount: Decimal
    purchase_price: Decimal
    sale_price: Decimal
    change_percent: Decimal
    profit_loss_sol: Decimal
    profit_loss_usd: Decimal | None


def _usd(sol: Decimal, sol_usd: Decimal | None) -> Decimal | None:
    return None if sol_usd is None else quantize(sol * sol_usd, SOL_8)


def _history(
    purchase_price: Decimal, purchase_amount: Decimal, received: Decimal, profit: Decimal, sol_usd: Decimal | None
) -> HistoryFigures:
    """History figures of a closed position: ``received`` SOL came back for ``purchase_amount`` tokens
    bought at ``purchase_price``, a P/L of ``profit`` SOL (already at its 8-decimal scale)."""
    basis = purchase_price * purchase_amount
    return HistoryFigures(
        amount=purchase_amount,
        purchase_price=purchase_price,
        sale_price=quantize(received / purchase_amount, AMOUNT_18) if purchase_amount else ZERO,
        change_percent=quantize(profit / basis * HUNDRED if basis else ZERO, PCT_4),
        profit_loss_sol=profit,
        profit_loss_usd=_usd(profit, sol_usd),
    )


@exact
def buy_fill(
    *,
    input_lamports: int,
    output_raw: int,
    token_decimals: int,
    protocol_fee_sol: Decimal | None,
    network_fee_sol: Decimal | None,
    total_input_lamports: int | None = None,
    sol_usd: Decimal | None = None,
    swap_usd_value: Decimal | None = None,
) -> BuyFill:
    """§4.3 steps 6–8 for a SOL → token swap (initial buy or DCA)."""
    if input_lamports <= 0 or output_raw <= 0:
        raise TradeError("INVALID_TRANSACTION", "Transaction missing required fields for position creation")
    in_sol = quantize(lamports_to_sol(input_lamports), AMOUNT_18)
    tokens = quantize(from_raw(output_raw, token_decimals), AMOUNT_18)
    if tokens <= 0:
        raise TradeError("INVALID_TRANSACTION", "Transaction missing required fields for position creation")
    protocol, network = quantize_opt(protocol_fee_sol, SOL_8), quantize_opt(network_fee_sol, SOL_8)
    if total_input_lamports is not None:
        gross = quantize(lamports_to_sol(total_input_lamports), AMOUNT_18)
    else:
        gross = in_sol + (protocol or ZERO)
    value = swap_usd_value if swap_usd_value is not None else (None if sol_usd is None else gross * sol_usd)
    return BuyFill(
        in_sol=in_sol,
        input_amount=gross,
        output_amount=tokens,
        price=quantize(in_sol / tokens, AMOUNT_18),
        protocol_fee_sol=protocol,
        network_fee_sol=network,
        debit_sol=gross + (network or ZERO),
        value_usd=quantize_opt(value, SOL_8),
    )


@exact
def sell_fill(
    *,
    input_raw: int,
    token_decimals: int,
    output_lamports: int,
    protocol_fee_sol: Decimal | None,
    network_fee_sol: Decimal | None,
    total_output_lamports: int | None = None,
    sol_usd: Decimal | None = None,
    swap_usd_value: Decimal | None = None,
) -> SellFill:
    """§4.5 steps 7 and 9 for a token → SOL swap (full or take-profit sale)."""
    tokens = quantize(from_raw(input_raw, token_decimals), AMOUNT_18) if input_raw > 0 else ZERO
    out_sol = quantize(lamports_to_sol(output_lamports), AMOUNT_18) if output_lamports > 0 else ZERO
    if tokens <= 0 or out_sol <= 0:
        raise TradeError("INVALID_SALE_PRICE", "Invalid sale price calculated")
    protocol, network = quantize_opt(protocol_fee_sol, SOL_8), quantize_opt(network_fee_sol, SOL_8)
    if total_output_lamports is not None:
        net = quantize(lamports_to_sol(total_output_lamports), AMOUNT_18)
    else:
        net = out_sol - (protocol or ZERO)
    value = swap_usd_value if swap_usd_value is not None else (None if sol_usd is None else out_sol * sol_usd)
    return SellFill(
        input_amount=tokens,
        out_sol=out_sol,
        output_amount=net,
        price=quantize(out_sol / tokens, AMOUNT_18),
        protocol_fee_sol=protocol,
        network_fee_sol=network,
        credit_sol=net - (network or ZERO),
        value_usd=quantize_opt(value, SOL_8),
    )


def net_sol_proceeds(output_amount: Decimal, network_fee_sol: Decimal | None) -> Decimal:
    """SOL a stored sell row credited (its ledger SOL delta): net output minus the network fee."""
    return quantize(output_amount, AMOUNT_18) - (quantize_opt(network_fee_sol, SOL_8) or ZERO)


# --------------------------------------------------------------------------------------------------
# Buy


class BuyPlan(msgspec.Struct, frozen=True, kw_only=True):
    fill: BuyFill
    purchase_price: Decimal
    purchase_amount: Decimal
    total_invested_sol: Decimal
    lowest_price: Decimal
    stop_loss: StopLossReset | None  # initial stop-loss fields (§5.3); None when disabled


@exact
def plan_buy(cfg: AgentTradingConfig, fill: BuyFill) -> BuyPlan:
    """§4.3 step 9: the new position of a buy whose figures are ``fill`` (:func:`buy_fill`)."""
    return BuyPlan(
        fill=fill,
        purchase_price=fill.price,
        purchase_amount=fill.output_amount,
        total_invested_sol=quantize(fill.debit_sol, SOL_8),
        lowest_price=fill.price,
        stop_loss=initial_stop_loss(fill.price, cfg),
    )


# --------------------------------------------------------------------------------------------------
# Full sale


class SalePlan(msgspec.Struct, frozen=True, kw_only=True):
    fill: SellFill
    received_sol: Decimal  # this sale's credit + every earlier take-profit credit
    profit_loss_sol: Decimal
    profit_loss_usd: Decimal | None
    change_percent: Decimal
    history: HistoryFigures


@exact
def closing_history(position: PositionState, received_sol: Decimal, sol_usd: Decimal | None) -> HistoryFigures:
    """History figures of a position closed once ``received_sol`` came back for it in all (cash-flow P/L:
    everything received minus everything invested), for a full sale as for a rug-pull write-off."""
    profit = quantize(received_sol - position.total_invested_sol, SOL_8)
    return _history(position.purchase_price, position.purchase_amount, received_sol, profit, sol_usd)


@exact
def plan_full_sale(
    position: PositionState,
    fill: SellFill,
    *,
    tp_net_proceeds: Decimal = ZERO,
    sol_usd: Decimal | None = None,
) -> SalePlan:
    """§4.5 steps 8 and 12 for a sale whose figures are ``fill`` (:func:`sell_fill`).
    ``tp_net_proceeds`` = Σ :func:`net_sol_proceeds` of the position's take-profit rows."""
    received = fill.credit_sol + tp_net_proceeds
    history = closing_history(position, received, sol_usd)
    return SalePlan(
        fill=fill,
        received_sol=received,
        profit_loss_sol=history.profit_loss_sol,
        profit_loss_usd=history.profit_loss_usd,
        change_percent=history.change_percent,
        history=history,
    )


# --------------------------------------------------------------------------------------------------
# Take-profit sale


class TakeProfitSalePlan(msgspec.Struct, frozen=True, kw_only=True):
    fill: SellFill
    cost_basis_sol: Decimal
    profit_loss_sol: Decimal
    profit_loss_usd: Decimal | None
    change_percent: Decimal
    # position update (§4.6 step 6)
    remaining_amount: Decimal
    take_profit_levels_hit: int
    realized_profit_sol: Decimal
    moon_bag_activated: bool
    moon_bag_amount: Decimal | None
    last_take_profit_time: datetime
    # §4.6 step 7: the sale emptied the position and no moon bag stays behind
    closes_position: bool
    history: HistoryFigures | None


def check_sell_amount(position: PositionState, sell_amount: Decimal) -> None:
    """§4.6 step 2: a take-profit sale must sell something and no more than the position holds."""
    if not 0 < sell_amount <= position.holding:
        raise TradeError("INVALID_SELL_AMOUNT", f"Invalid sell amount: {sell_amount} (remaining {position.holding})")


@exact
def take_profit_close_history(
    purchase_price: Decimal, purchase_amount: Decimal, realized_profit_sol: Decimal, sol_usd: Decimal | None
) -> HistoryFigures:
    """History row when take-profit sales alone closed the position (§4.6 step 7): what came back is the
    cost basis plus the realized profit (an 8-decimal figure, as positions store it)."""
    received = purchase_price * purchase_amount + realized_profit_sol
    return _history(purchase_price, purchase_amount, received, quantize(realized_profit_sol, SOL_8), sol_usd)


@exact
def plan_take_profit_sale(
    position: PositionState,
    decision: TakeProfitDecision,
    fill: SellFill,
    *,
    now: datetime,
    sol_usd: Decimal | None = None,
) -> TakeProfitSalePlan:
    """§4.6 steps 4, 6 and 7 for a sale whose figures are ``fill`` (:func:`sell_fill`).

    ``remaining_amount`` is the holding minus the tokens actually sold, not the evaluator's
    planned figure (§16.11), so the position always matches the token balance.
    """
    cost_basis = quantize(fill.input_amount / position.purchase_amount * position.total_invested_sol, SOL_8)
    profit = fill.credit_sol - cost_basis
    profit_sol = quantize(profit, SOL_8)
    remaining = max(ZERO, position.holding - fill.input_amount)
    realized = quantize(position.realized_profit_sol + profit_sol, SOL_8)
    activated = position.moon_bag_activated or (decision.activate_moon_bag and decision.moon_bag_amount > 0)
    moon_bag = decision.moon_bag_amount if decision.activate_moon_bag and decision.moon_bag_amount > 0 else None
    closes = remaining < TAKE_PROFIT_DUST and moon_bag is None
    return TakeProfitSalePlan(
        fill=fill,
        cost_basis_sol=cost_basis,
        profit_loss_sol=profit_sol,
        profit_loss_usd=_usd(profit_sol, sol_usd),
        change_percent=quantize(
            (fill.price - position.purchase_price) / position.purchase_price * HUNDRED
            if position.purchase_price
            else ZERO,
            PCT_4,
        ),
        remaining_amount=remaining,
        take_profit_levels_hit=position.take_profit_levels_hit + decision.levels_executed,
        realized_profit_sol=realized,
        moon_bag_activated=activated,
        moon_bag_amount=moon_bag if moon_bag is not None else position.moon_bag_amount,
        last_take_profit_time=now,
        closes_position=closes,
        history=(
            take_profit_close_history(position.purchase_price, position.purchase_amount, realized, sol_usd)
            if closes
            else None
        ),
    )


# --------------------------------------------------------------------------------------------------
# DCA buy


@exact
def new_average_price(
    total_invested_sol: Decimal, purchase_amount: Decimal, debit_sol: Decimal, tokens: Decimal
) -> Decimal:
    """Weighted average after adding ``tokens`` for ``debit_sol`` (§7.4)."""
    return (total_invested_sol + debit_sol) / (purchase_amount + tokens)


class DcaBuyPlan(msgspec.Struct, frozen=True, kw_only=True):
    fill: BuyFill
    purchase_price: Decimal
    purchase_amount: Decimal
    total_invested_sol: Decimal
    remaining_amount: Decimal | None
    dca_count: int
    last_dca_time: datetime
    tp_batch_start_level: int
    total_take_profit_levels: int
    stop_loss: StopLossReset | None  # re-based stop-loss fields; None ⇒ leave them unchanged


@exact
def plan_dca_buy(position: PositionState, cfg: AgentTradingConfig, fill: BuyFill, *, now: datetime) -> DcaBuyPlan:
    """§4.7 steps 4 and 6 for a buy whose figures are ``fill`` (:func:`buy_fill`), plus the stop-loss
    re-base of :func:`reset_after_dca` (§16.17)."""
    invested = quantize(position.total_invested_sol + fill.debit_sol, SOL_8)
    amount = position.purchase_amount + fill.output_amount
    average = quantize(invested / amount, AMOUNT_18)
    hit = position.take_profit_levels_hit
    return DcaBuyPlan(
        fill=fill,
        purchase_price=average,
        purchase_amount=amount,
        total_invested_sol=invested,
        remaining_amount=None if position.remaining_amount is None else position.remaining_amount + fill.output_amount,
        dca_count=position.dca_count + 1,
        last_dca_time=now,
        tp_batch_start_level=hit,
        total_take_profit_levels=hit + len(effective_take_profit_levels(cfg.take_profit)),
        stop_loss=reset_after_dca(average, fill.price, cfg),
    )
