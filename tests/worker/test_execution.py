"""The execution path against a real PostgreSQL: buy, sale, take profit, DCA, burn, their rows and races."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal, localcontext

import msgspec
import pytest

from app.audit import run_audit
from app.market.replay import SimulatedQuoter
from app.trading.errors import TradeError
from app.trading.units import SOL_MINT
from app.worker.execution import (
    execute_burn,
    execute_buy,
    execute_dca_buy,
    execute_full_sale,
    execute_take_profit_sale,
)
from tests.factories import create_agent, create_user, deposit_sol
from tests.worker.helpers import (
    NINE,
    STEADY,
    THIN,
    MarketBundle,
    RecordingQuoter,
    ScriptedQuoter,
    execution_context,
    extra_mint,
    insert_signal,
    no_randomization,
    replay_market,
    sol_balance,
    token_balance,
)

D = Decimal


def q18(value: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(D("1e-18"))


async def funded_agent(pool, amount: str = "3", config: dict | None = None) -> tuple[uuid.UUID, uuid.UUID, str]:
    user = await create_user(pool)
    agent, wallet = await create_agent(pool, user, trading_config=config)
    if D(amount) > 0:
        await deposit_sol(pool, agent, wallet, amount)
    return user, agent, wallet


async def fails_with(code: str, coro) -> TradeError:
    with pytest.raises(TradeError) as info:
        await coro
    assert info.value.code == code, info.value
    return info.value


# --------------------------------------------------------------------------------------------------
# Buy and sale: the spec's worked example, with the protocol fee charged in simulation (§16.5)


async def test_buy_then_sale_worked_example(pool, settings):
    quoter = ScriptedQuoter({"outAmount": "36614551686"}, {"outAmount": "1200000000"})
    ctx = execution_context(pool, settings, MarketBundle(replay_market(), quoter))
    user, agent, wallet = await funded_agent(pool, "3")
    signal_id = await insert_signal(pool, user)

    buy = await execute_buy(
        ctx, agent_id=agent, token_address=STEADY, token_symbol="STEADY", signal_id=signal_id, position_size=D("1.0")
    )

    price = q18(D(1) / D("36614.551686"))
    assert buy.input_amount == D("1.001")  # 1 SOL swapped + 0.001 protocol fee
    assert buy.output_amount == D("36614.551686")
    assert buy.purchase_price == price
    assert buy.stop_loss_initialized and buy.stop_loss_percentage == D("-32")
    tx = await pool.fetchrow("SELECT * FROM agent_transactions WHERE id = $1", buy.transaction_id)
    assert tx["transaction_type"] == "SWAP" and tx["signal_id"] == signal_id
    assert (tx["input_mint"], tx["input_symbol"], tx["input_amount"], tx["input_price"]) == (
        SOL_MINT,
        "SOL",
        D("1.001"),
        1,
    )
    assert (tx["output_mint"], tx["output_symbol"], tx["output_amount"]) == (STEADY, "STEADY", D("36614.551686"))
    assert tx["output_price"] == price
    assert (tx["protocol_fee_sol"], tx["network_fee_sol"], tx["fees"]) == (D("0.001"), D("0.000105"), D("0.001105"))
    assert tx["transaction_value_usd"] == D("150.15") and tx["sol_usd_price"] == 150
    assert (tx["slippage"], tx["price_impact"]) == (D("0.5"), D("-0.0001"))
    assert tx["swap_payload"]["outAmount"] == "36614551686"
    assert await sol_balance(pool, wallet) == D("1.998895")
    assert await token_balance(pool, wallet, STEADY) == D("36614.551686")
    position = await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", buy.position_id)
    assert position["purchase_transaction_id"] == buy.transaction_id
    assert (position["purchase_price"], position["purchase_amount"]) == (price, D("36614.551686"))
    assert position["total_invested_sol"] == D("1.001105")
    assert position["current_stop_loss_percentage"] == D("-32")
    assert position["peak_price"] == price == position["lowest_price"]

    sale = await execute_full_sale(ctx, agent_id=agent, position_id=buy.position_id, reason="manual")

    assert sale.outcome == "executed"
    assert sale.output_amount == D("1.2") and sale.credit_sol == D("1.198695")
    assert sale.profit_loss_sol == D("0.19759")  # 1.198695 − 1.001105
    assert sale.profit_loss_usd == D("29.6385")
    stx = await pool.fetchrow("SELECT * FROM agent_transactions WHERE id = $1", sale.transaction_id)
    assert (stx["input_mint"], stx["input_amount"], stx["output_mint"]) == (STEADY, D("36614.551686"), SOL_MINT)
    assert stx["output_amount"] == D("1.1988") and stx["protocol_fee_sol"] == D("0.0012")
    assert stx["signal_id"] == signal_id  # inherited from the purchase
    assert stx["transaction_value_usd"] == D("180")
    assert await sol_balance(pool, wallet) == D("3.19759")  # moved by exactly the P/L
    assert await token_balance(pool, wallet, STEADY) is None
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE id = $1", buy.position_id) == 0
    history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE id = $1", sale.historical_swap_id)
    assert history["amount"] == D("36614.551686") and history["purchase_price"] == price
    assert history["sale_price"] == q18(D("1.198695") / D("36614.551686"))
    assert history["profit_loss_sol"] == D("0.19759") and history["profit_loss_usd"] == D("29.6385")
    assert history["change_percent"] == D("19.7590")
    assert (history["purchase_transaction_id"], history["sale_transaction_id"]) == (
        buy.transaction_id,
        sale.transaction_id,
    )
    assert history["signal_id"] == signal_id and history["close_reason"] == "manual"
    assert history["purchase_time"] == position["created_at"]


async def test_position_is_created_even_with_stop_loss_and_take_profit_disabled(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, _ = await funded_agent(pool, "3", no_randomization(stopLoss={"enabled": False}))

    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY)

    assert buy.position_id is not None and not buy.stop_loss_initialized
    row = await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", buy.position_id)
    assert row["current_stop_loss_percentage"] is None and row["peak_price"] is None
    err = await fails_with("POSITION_EXISTS", execute_buy(ctx, agent_id=agent, token_address=STEADY))
    assert err.message == f"Position already exists for token: {STEADY}"


async def test_long_symbols_are_cut_to_the_column_width(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, _ = await funded_agent(pool)

    buy = await execute_buy(
        ctx, agent_id=agent, token_address=NINE, token_symbol="A-VERY-LONG-SYMBOL-OF-40-CHARACTERS-XXXX"
    )

    symbols = await pool.fetchrow(
        """SELECT p.token_symbol AS position, t.output_symbol AS tx, b.token_symbol AS balance
           FROM agent_positions p JOIN agent_transactions t ON t.id = p.purchase_transaction_id
           JOIN agent_balances b ON b.wallet_address = p.wallet_address AND b.token_address = p.token_address
           WHERE p.id = $1""",
        buy.position_id,
    )
    assert set(symbols.values()) == {"A-VERY-LONG-SYMBOL-O"}


# --------------------------------------------------------------------------------------------------
# Validation, in the reference's order and words


async def test_validation_failures_use_the_reference_codes_and_texts(pool, settings):
    ctx = execution_context(pool, settings)
    await fails_with("AGENT_NOT_FOUND", execute_buy(ctx, agent_id=uuid.uuid4(), token_address=STEADY))

    user = await create_user(pool)
    bare = await pool.fetchval("INSERT INTO agents (user_id, name) VALUES ($1, 'no wallet') RETURNING id", user)
    err = await fails_with("WALLET_NOT_FOUND", execute_buy(ctx, agent_id=bare, token_address=STEADY))
    assert err.message == "No wallet found for agent"

    _, agent, wallet = await funded_agent(pool, "0")
    _, _, other_wallet = await funded_agent(pool, "0")
    err = await fails_with(
        "WALLET_NOT_FOUND", execute_buy(ctx, agent_id=agent, token_address=STEADY, wallet_address=other_wallet)
    )
    assert err.message == "Wallet not found or does not belong to agent"
    err = await fails_with("INSUFFICIENT_BALANCE", execute_buy(ctx, agent_id=agent, token_address=STEADY))
    assert err.message == "Insufficient SOL balance"
    await deposit_sol(pool, agent, wallet, "0.3")
    err = await fails_with("BELOW_MINIMUM_THRESHOLD", execute_buy(ctx, agent_id=agent, token_address=STEADY))
    assert err.message == "Balance below minimum threshold: 0.5 SOL"

    await pool.execute("UPDATE agents SET trading_mode = 'live' WHERE id = $1", agent)
    err = await fails_with(
        "TRADING_MODE_MISMATCH", execute_buy(ctx, agent_id=agent, token_address=STEADY, wallet_address=wallet)
    )
    assert err.message == "Trading mode mismatch: agent is in 'live' mode but wallet is 'simulation'"
    await pool.execute(
        "INSERT INTO agent_wallets (wallet_address, agent_id, wallet_type) VALUES ($1, $2, 'live')",
        "Live" + uuid.uuid4().hex[:28],
        agent,
    )
    await fails_with("WALLET_NOT_LOADED", execute_buy(ctx, agent_id=agent, token_address=STEADY))

    _, broken, _ = await funded_agent(pool, "3", {"signals": {"minScore": 9}})
    err = await fails_with("CONFIG_ERROR", execute_buy(ctx, agent_id=broken, token_address=STEADY))
    assert err.message == "Failed to load trading configuration: Invalid trading configuration"

    _, agent, _ = await funded_agent(pool, "3")
    await fails_with(
        "EXCEEDS_MAX_PURCHASE", execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("2.5"))
    )
    await fails_with(
        "VIOLATES_MINIMUM_BALANCE", execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("2.7"))
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND transaction_type = 'SWAP'", agent
        )
        == 0
    )


async def test_max_open_positions(pool, settings):
    ctx = execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=1)))
    _, agent, wallet = await funded_agent(pool, "10")
    ids = []
    async with pool.acquire() as conn:
        for i in range(25):
            ids.append(
                await conn.fetchval(
                    """INSERT INTO agent_positions (agent_id, wallet_address, token_address, token_symbol,
                           purchase_price, purchase_amount) VALUES ($1, $2, $3, 'X', 1, 1) RETURNING id""",
                    agent,
                    wallet,
                    f"Fake{i:02d}".ljust(44, "z"),
                )
            )
    try:
        err = await fails_with("MAX_POSITIONS_EXCEEDED", execute_buy(ctx, agent_id=agent, token_address=extra_mint(0)))
        assert err.message == "Agent has reached maximum limit of 25 open positions"
    finally:
        await pool.execute("DELETE FROM agent_positions WHERE id = ANY($1::uuid[])", ids)


# --------------------------------------------------------------------------------------------------
# Sizing through the real quote path


async def test_price_impact_retry_ladder_buys_at_the_first_acceptable_size(pool, settings):
    quoter = RecordingQuoter(SimulatedQuoter(replay_market(thin_liquidity_usd="2400")))
    ctx = execution_context(pool, settings, MarketBundle(quoter.inner.market, quoter))
    _, agent, _ = await funded_agent(pool, "5")

    buy = await execute_buy(ctx, agent_id=agent, token_address=THIN, position_size=D("1.0"))

    # 1.0 SOL ($150 into a $2,400 pool) moves the price 5.9 %, 0.9 SOL 5.3 %, 0.8 SOL 4.8 % < 5 %.
    assert [amount for _, _, amount in quoter.calls] == [1_000_000_000, 900_000_000, 800_000_000]
    assert buy.input_amount == D("0.8008")


async def test_price_impact_too_high_even_after_retries(pool, settings):
    quoter = RecordingQuoter(SimulatedQuoter(replay_market(thin_liquidity_usd="1725")))
    ctx = execution_context(pool, settings, MarketBundle(quoter.inner.market, quoter))
    _, agent, _ = await funded_agent(pool, "5")

    err = await fails_with(
        "PRICE_IMPACT_TOO_HIGH", execute_buy(ctx, agent_id=agent, token_address=THIN, position_size=D("1.0"))
    )

    assert err.message == "Price impact (slippage) 8.00% exceeds maximum threshold 5.00% even after retries"
    assert [amount for _, _, amount in quoter.calls] == [1_000_000_000, 900_000_000, 800_000_000, 700_000_000]
    assert await pool.fetchval("SELECT count(*) FROM agent_transactions WHERE agent_id = $1", agent) == 1  # deposit


async def test_computed_size_keeps_the_minimum_balance_including_fees(pool, settings):
    quoter = RecordingQuoter(SimulatedQuoter(replay_market()))
    ctx = execution_context(pool, settings, MarketBundle(quoter.inner.market, quoter))
    _, agent, wallet = await funded_agent(pool, "0.55")

    await execute_buy(ctx, agent_id=agent, token_address=STEADY)

    # Calculator: 0.1 would leave 0.45 < 0.5 ⇒ 0.05; with fees that still dips below, so it shrinks once.
    first, second = (amount for _, _, amount in quoter.calls)
    assert first == 50_000_000 and second < first
    left = await sol_balance(pool, wallet)
    assert D("0.5") <= left < D("0.5000001")


# --------------------------------------------------------------------------------------------------
# Concurrency on one agent (§16.9/§16.10)


async def test_concurrent_buys_never_breach_the_minimum_balance(pool, settings):
    ctx = execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=8)))
    _, agent, wallet = await funded_agent(pool, "2")

    outcomes = await asyncio.gather(
        *(execute_buy(ctx, agent_id=agent, token_address=extra_mint(i), position_size=D("0.4")) for i in range(8)),
        return_exceptions=True,
    )

    bought = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, TradeError)]
    assert len(bought) == 3 and len(refused) == 5, outcomes
    assert {e.code for e in refused} == {"VIOLATES_MINIMUM_BALANCE"}
    assert await sol_balance(pool, wallet) == D(2) - sum(b.debit_sol for b in bought) >= D("0.5")
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 3


async def test_concurrent_buys_never_breach_the_position_cap(pool, settings):
    ctx = execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=30)))
    _, agent, _ = await funded_agent(pool, "100")

    outcomes = await asyncio.gather(
        *(execute_buy(ctx, agent_id=agent, token_address=extra_mint(i), position_size=D("0.1")) for i in range(30)),
        return_exceptions=True,
    )

    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 5 and {e.code for e in refused} == {"MAX_POSITIONS_EXCEEDED"}, refused
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE agent_id = $1", agent) == 25


# --------------------------------------------------------------------------------------------------
# Sales


async def test_sale_pnl_and_history_after_the_price_doubles(pool, settings):
    market = replay_market(later={STEADY: "0.0000546230913094"})
    ctx = execution_context(pool, settings, MarketBundle(market))
    _, agent, wallet = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("1"))
    market.seek(10)

    sale = await execute_full_sale(ctx, agent_id=agent, position_id=buy.position_id, reason="stop_loss")

    assert D("0.99") < sale.profit_loss_sol < D("1.0")
    assert sale.profit_loss_sol == (sale.credit_sol - buy.debit_sol).quantize(D("1e-8"))
    assert await sol_balance(pool, wallet) == D(3) - buy.debit_sol + sale.credit_sol
    history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE id = $1", sale.historical_swap_id)
    assert history["close_reason"] == "stop_loss"
    assert history["profit_loss_sol"] == sale.profit_loss_sol
    assert history["profit_loss_usd"] == (sale.profit_loss_sol * 150).quantize(D("1e-8"))
    assert D("99") < history["change_percent"] < D("100")


async def test_a_position_is_never_sold_twice(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, _ = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY)

    results = await asyncio.gather(
        *(execute_full_sale(ctx, agent_id=agent, position_id=buy.position_id, reason="stop_loss") for _ in range(4))
    )

    assert sorted(r.outcome for r in results) == ["already_closed"] * 3 + ["executed"]
    sells = await pool.fetchval(
        "SELECT count(*) FROM agent_transactions WHERE agent_id = $1 AND input_mint = $2", agent, STEADY
    )
    assert sells == 1
    assert await pool.fetchval("SELECT count(*) FROM agent_historical_swaps WHERE agent_id = $1", agent) == 1


async def test_sale_decided_on_an_older_state_is_not_executed(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, _ = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY)
    seen = await pool.fetchval("SELECT updated_at FROM agent_positions WHERE id = $1", buy.position_id)
    await pool.execute("UPDATE agent_positions SET peak_price = 1, updated_at = now() WHERE id = $1", buy.position_id)

    result = await execute_full_sale(
        ctx, agent_id=agent, position_id=buy.position_id, reason="stop_loss", expected_updated_at=seen
    )

    assert result.outcome == "changed"
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE id = $1", buy.position_id) == 1
    err = await fails_with(
        "POSITION_MISMATCH", execute_full_sale(ctx, agent_id=uuid.uuid4(), position_id=buy.position_id, reason="manual")
    )
    assert err.message == "Position does not belong to agent"


# --------------------------------------------------------------------------------------------------
# Take profit, DCA, burn: the position moves with the balances, in one transaction (§16.11, §16.20)


async def test_take_profit_then_full_sale_counts_every_slice(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, wallet = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("1"))
    quarter = (buy.output_amount / 4).quantize(D("1e-6"))

    tp = await execute_take_profit_sale(
        ctx, position_id=buy.position_id, sell_amount=quarter, levels_executed=1, expected_levels_hit=0,
        activate_moon_bag=False, moon_bag_amount=None,
    )  # fmt: skip

    assert tp.outcome == "executed" and tp.tokens_sold == quarter and not tp.position_closed
    position = await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", buy.position_id)
    assert position["remaining_amount"] == buy.output_amount - quarter
    assert position["take_profit_levels_hit"] == 1
    assert position["take_profit_transaction_ids"] == [tp.transaction_id]
    assert position["realized_profit_sol"] == tp.profit_loss_sol
    assert await token_balance(pool, wallet, STEADY) == buy.output_amount - quarter
    again = await execute_take_profit_sale(
        ctx, position_id=buy.position_id, sell_amount=quarter, levels_executed=1, expected_levels_hit=0,
        activate_moon_bag=False, moon_bag_amount=None,
    )  # fmt: skip
    assert again.outcome == "changed"

    sale = await execute_full_sale(ctx, agent_id=agent, position_id=buy.position_id, reason="manual")

    assert sale.input_amount == buy.output_amount - quarter
    assert sale.profit_loss_sol == (tp.credit_sol + sale.credit_sol - D("1.001105")).quantize(D("1e-8"))
    assert await sol_balance(pool, wallet) == D(3) - buy.debit_sol + tp.credit_sol + sale.credit_sol


async def test_take_profit_selling_everything_closes_the_position(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, _ = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY)

    tp = await execute_take_profit_sale(
        ctx, position_id=buy.position_id, sell_amount=buy.output_amount, levels_executed=4, expected_levels_hit=0,
        activate_moon_bag=False, moon_bag_amount=None,
    )  # fmt: skip

    assert tp.position_closed and tp.historical_swap_id is not None
    history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE id = $1", tp.historical_swap_id)
    assert history["close_reason"] == "take_profit" and history["profit_loss_sol"] == tp.profit_loss_sol
    assert await pool.fetchval("SELECT count(*) FROM agent_positions WHERE id = $1", buy.position_id) == 0


async def test_dca_buy_updates_the_position_with_the_balances(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, wallet = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("1"))

    dca = await execute_dca_buy(ctx, position_id=buy.position_id, buy_amount_sol=D("0.5"), expected_dca_count=0)

    assert dca.outcome == "executed" and dca.dca_count == 1
    position = await pool.fetchrow("SELECT * FROM agent_positions WHERE id = $1", buy.position_id)
    assert position["purchase_amount"] == buy.output_amount + dca.tokens_bought
    assert position["total_invested_sol"] == (buy.debit_sol + dca.debit_sol).quantize(D("1e-8"))
    assert position["purchase_price"] == q18(position["total_invested_sol"] / position["purchase_amount"])
    assert position["dca_transaction_ids"] == [dca.transaction_id] and position["last_dca_time"] is not None
    assert position["tp_batch_start_level"] == 0 and position["total_take_profit_levels"] == 4
    assert await token_balance(pool, wallet, STEADY) == position["purchase_amount"]
    assert await sol_balance(pool, wallet) == D(3) - buy.debit_sol - dca.debit_sol
    again = await execute_dca_buy(ctx, position_id=buy.position_id, buy_amount_sol=D("0.5"), expected_dca_count=0)
    assert again.outcome == "changed"
    err = await fails_with(
        "INSUFFICIENT_BALANCE",
        execute_dca_buy(ctx, position_id=buy.position_id, buy_amount_sol=D("50"), expected_dca_count=1),
    )
    assert err.message.startswith("Insufficient SOL balance for DCA: have 1.4")


async def test_burn_writes_off_the_actual_balance_with_a_history_row(pool, settings):
    ctx = execution_context(pool, settings)
    _, agent, wallet = await funded_agent(pool, "3")
    buy = await execute_buy(ctx, agent_id=agent, token_address=STEADY, position_size=D("1"))
    tp = await execute_take_profit_sale(
        ctx, position_id=buy.position_id, sell_amount=buy.output_amount / 2, levels_executed=1, expected_levels_hit=0,
        activate_moon_bag=False, moon_bag_amount=None,
    )  # fmt: skip
    left = await token_balance(pool, wallet, STEADY)

    burn = await execute_burn(ctx, position_id=buy.position_id)

    assert burn.outcome == "executed" and burn.amount_burned == left
    row = await pool.fetchrow("SELECT * FROM agent_transactions WHERE id = $1", burn.transaction_id)
    assert (row["transaction_type"], row["input_mint"], row["input_amount"]) == ("BURN", STEADY, left)
    history = await pool.fetchrow("SELECT * FROM agent_historical_swaps WHERE id = $1", burn.historical_swap_id)
    assert history["close_reason"] == "rug_pull"
    assert history["profit_loss_sol"] == (tp.credit_sol - D("1.001105")).quantize(D("1e-8")) < 0
    assert await token_balance(pool, wallet, STEADY) is None
    assert (await execute_burn(ctx, position_id=buy.position_id)).outcome == "already_closed"


async def test_the_ledger_is_consistent_after_all_of_the_above(pool):
    assert await run_audit(pool) == []


async def test_events_are_published_at_commit_only(pool, settings, database_url):
    import asyncpg

    ctx = execution_context(pool, settings, MarketBundle(replay_market(extra_tokens=2)))
    _, agent, wallet = await funded_agent(pool, "3")
    received: list[dict] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("nexgent_events", lambda *args: received.append(msgspec.json.decode(args[3])))
    try:
        # A symbol containing the dollar-quote tag must not break the NOTIFY sent with the COMMIT.
        buy = await execute_buy(ctx, agent_id=agent, token_address=extra_mint(0), token_symbol="$nx$'X")
        await fails_with("POSITION_EXISTS", execute_buy(ctx, agent_id=agent, token_address=extra_mint(0)))
        await execute_full_sale(ctx, agent_id=agent, position_id=buy.position_id, reason="manual")
        await asyncio.sleep(0.2)
    finally:
        await listener.close()

    mine = [(e["type"], e["data"]) for e in received if e["agentId"] == str(agent)]
    assert [kind for kind, _ in mine] == [
        "position_created", "balance_update", "trade", "position_closed", "balance_update", "trade"
    ]  # fmt: skip
    created = mine[0][1]
    assert created["walletAddress"] == wallet and created["position"]["id"] == str(buy.position_id)
    assert created["position"]["tokenSymbol"] == "$nx$'X" and created["position"]["currentStopLossPercentage"] == -32
    assert mine[2][1]["transactionId"] == str(buy.transaction_id)
    assert mine[3][1] == {
        "agentId": str(agent), "walletAddress": wallet, "positionId": str(buy.position_id),
        "tokenAddress": extra_mint(0),
    }  # fmt: skip
