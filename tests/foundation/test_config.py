from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.port == 4000
    assert settings.database_url is None
    assert settings.price_source == "replay"


def test_values_are_parsed_from_strings() -> None:
    settings = load_settings({"PORT": "8080", "REGISTRATION_ENABLED": "false", "WORKER_HEARTBEAT_S": "0.5"})
    assert (settings.port, settings.registration_enabled, settings.worker_heartbeat_s) == (8080, False, 0.5)


def test_invalid_value_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="port"):
        load_settings({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="price_source"):
        load_settings({"PRICE_SOURCE": "coingecko"})


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "short",
        "your-strong-random-secret-key-minimum-32-characters-long",
        "your-secret-here-minimum-32-characters",
    ],
)
def test_production_refuses_missing_or_placeholder_secret(secret: str | None) -> None:
    env = {"APP_ENV": "production"}
    if secret is not None:
        env["JWT_SECRET"] = secret
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_settings(env)


def test_production_accepts_a_real_secret() -> None:
    settings = load_settings({"APP_ENV": "production", "JWT_SECRET": "k3J9x0Qv7LmZt2Rw8YpN4sHc6Fd1Ga5Eb"})
    assert settings.is_production


def test_every_setting_is_documented_in_the_readme() -> None:
    import msgspec

    from app.config import Settings
    from tests.dbutil import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [f.name.upper() for f in msgspec.structs.fields(Settings) if f"`{f.name.upper()}`" not in readme]
    assert missing == []
