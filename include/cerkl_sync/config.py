"""Sync settings: the ``cerkl_sync_config`` Variable, its defaults and its validation.

Every rule the DAG applies is read from one JSON Variable so that an operator can change
behaviour without a release. Keys left out take the defaults below; an unknown key or a value
of the wrong type raises :class:`ConfigError` naming the key, the value and the fix.

``python -m include.cerkl_sync.config --print-defaults`` prints the defaults as JSON, which
is what deployments store in the Variable on first start.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_VARIABLE = "cerkl_sync_config"
ORGANIZATION_VARIABLE = "cerkl_organization_id"
DEFAULT_ORGANIZATION_ID = "001C000001aTtMa"

FLOWS = (
    "contacts_to_subscribers",
    "new_subscribers_to_contacts",
    "unsubscribes_to_contacts",
    "subscriber_changes_to_contacts",
    "interests_to_contacts",
    "campaigns_to_segments",
)

CONFLICT_RULES = ("latest_wins", "salesforce_wins", "cerkl_wins")


class ConfigError(ValueError):
    """The ``cerkl_sync_config`` Variable contains an invalid setting."""


@dataclass(frozen=True)
class ContactFields:
    """API names of the Contact fields the sync reads and writes."""

    subscriber_id: str = "Cerkl_Subscriber_Id__c"
    unsubscribe: str = "Cerkl_Unsubscribe__c"
    has_opted_out: str = "HasOptedOutOfEmail"
    engagement_score: str = "Engagement_Score__c"
    interests: tuple[str, ...] = (
        "Interest_1__c",
        "Interest_2__c",
        "Interest_3__c",
        "Interest_4__c",
        "Interest_5__c",
    )
    email: str = "Email"
    first_name: str = "FirstName"
    last_name: str = "LastName"


@dataclass(frozen=True)
class SyncConfig:
    """Validated sync settings; see ``docs/configuration.md`` for each one."""

    #: Minutes subtracted from each window start, to catch records committed late.
    lookback_minutes: int = 15
    #: Maximum window a manual run without a logical date covers, in hours.
    max_manual_window_hours: int = 72
    #: Maximum number of records in one XCom batch.
    batch_size: int = 10_000
    #: Batches whose JSON exceeds this many bytes go to object storage instead of XCom.
    xcom_inline_max_bytes: int = 256 * 1024
    #: Most new Cerkl subscribers one run may create (Cerkl may send each a welcome email).
    max_new_subscribers_per_run: int = 5_000
    #: The same cap for a run with the ``full_sync`` param.
    full_sync_max_new_subscribers: int = 500_000
    #: A flow fails when rejected records reach both this share and ``reject_count_threshold``.
    reject_share_threshold: float = 0.05
    reject_count_threshold: int = 20
    #: SOQL condition that defines which Contacts are members of the audience.
    contact_scope_condition: str = "Email != null"
    #: Contact checkboxes that mean "opted out"; any one of them set is an opt-out.
    opt_out_fields: tuple[str, ...] = ("Cerkl_Unsubscribe__c", "HasOptedOutOfEmail")
    #: Whether a Cerkl unsubscribe also sets ``HasOptedOutOfEmail``.
    set_has_opted_out_of_email: bool = False
    #: Campaign ``Type`` values whose campaigns become Cerkl segments.
    campaign_types: tuple[str, ...] = ("Distribution List", "Committee", "Board")
    #: How a field changed on both sides is decided; an opt-out always wins.
    conflict_rule: str = "latest_wins"
    #: ``LastName`` for a Contact created from a subscriber without a last name.
    missing_last_name: str = "[not provided]"
    #: Folder for run reports; empty means ``$AIRFLOW_HOME/cerkl_sync_reports``.
    report_folder: str = ""
    #: Threads that send Cerkl requests at once in one task (the hook also bounds this).
    cerkl_workers: int = 4
    #: Prefix of the ``external_id`` that links a segment to its Campaign.
    segment_external_id_prefix: str = "SF_"
    contact_fields: ContactFields = field(default_factory=ContactFields)

    def resolved_report_folder(self) -> str:
        """Return the report folder, defaulting to a folder under ``AIRFLOW_HOME``."""
        if self.report_folder:
            return self.report_folder
        home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
        return os.path.join(home, "cerkl_sync_reports")


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default`` and convert lists to tuples."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{CONFIG_VARIABLE}.{name} must be true or false, got {value!r}.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"{CONFIG_VARIABLE}.{name} must be a whole number of 0 or more, got {value!r}."
            )
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(
                f"{CONFIG_VARIABLE}.{name} must be a number between 0 and 1, got {value!r}."
            )
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{CONFIG_VARIABLE}.{name} must be a string, got {value!r}.")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{CONFIG_VARIABLE}.{name} must be a list of strings, got {value!r}.")
        return tuple(value)
    raise ConfigError(f"{CONFIG_VARIABLE}.{name} has an unsupported value {value!r}.")


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(prefix + k for k in unknown)} in {CONFIG_VARIABLE}. "
            f"Valid keys: {', '.join(prefix + k for k in known)}."
        )
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{CONFIG_VARIABLE}.{prefix}{name} must be a JSON object, got {value!r}."
                )
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, default)
    return cls(**kwargs)


def parse_config(values: Mapping[str, Any] | str | None) -> SyncConfig:
    """Validate settings and fill in defaults.

    :param values: the Variable's JSON text or its parsed object; ``None`` or empty means
        all defaults.
    :return: the validated settings.
    :raises ConfigError: on invalid JSON, an unknown key or a value of the wrong type.
    """
    if values is None or values == "":
        return SyncConfig()
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{CONFIG_VARIABLE} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f'column {exc.colno}); store a JSON object such as {{"lookback_minutes": 15}}.'
            ) from exc
    if not isinstance(values, Mapping):
        raise ConfigError(f"{CONFIG_VARIABLE} must be a JSON object, got {type(values).__name__}.")
    config = _build(SyncConfig, values, "")
    if config.conflict_rule not in CONFLICT_RULES:
        raise ConfigError(
            f"{CONFIG_VARIABLE}.conflict_rule is {config.conflict_rule!r}; "
            f"use one of {', '.join(CONFLICT_RULES)}."
        )
    for name in ("batch_size", "cerkl_workers"):
        if getattr(config, name) < 1:
            raise ConfigError(
                f"{CONFIG_VARIABLE}.{name} must be at least 1, got {getattr(config, name)!r}."
            )
    if not config.missing_last_name.strip():
        raise ConfigError(
            f"{CONFIG_VARIABLE}.missing_last_name must not be empty, got "
            f"{config.missing_last_name!r}; Salesforce requires a LastName."
        )
    if config.contact_fields.unsubscribe not in config.opt_out_fields:
        # The unsubscribe flow sets this checkbox, and that write is a later Contact change.
        # Without it in the list, the Contact would look like its opt-out was cleared after the
        # Cerkl unsubscribe, and the next run would subscribe it again.
        raise ConfigError(
            f"{CONFIG_VARIABLE}.opt_out_fields is {list(config.opt_out_fields)!r}; it must "
            f"include contact_fields.unsubscribe ({config.contact_fields.unsubscribe!r})."
        )
    if not config.contact_fields.last_name.strip():
        raise ConfigError(
            f"{CONFIG_VARIABLE}.contact_fields.last_name must not be empty, got "
            f"{config.contact_fields.last_name!r}; use a Contact field API name such as LastName."
        )
    return config


def config_to_dict(config: SyncConfig) -> dict[str, Any]:
    """Return the settings as a JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Read a whole-number setting from the environment, naming the variable when invalid.

    :raises ConfigError: when the value is not a whole number of at least ``minimum``.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(
            f"Environment variable {name} is {raw!r}; set it to a whole number of at least "
            f"{minimum}, or unset it for the default {default}."
        )
    return value


def env_schedule() -> tuple[str, str]:
    """Read and check ``CERKL_SYNC_SCHEDULE`` (cron) and ``CERKL_SYNC_TIMEZONE`` (IANA name).

    :raises ConfigError: naming the variable, its value and the expected form.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    cron = os.environ.get("CERKL_SYNC_SCHEDULE", "").strip() or "0 0 * * *"
    timezone = os.environ.get("CERKL_SYNC_TIMEZONE", "").strip() or "UTC"
    if not croniter.is_valid(cron):
        raise ConfigError(
            f"Environment variable CERKL_SYNC_SCHEDULE is {cron!r}, not a cron expression; "
            "use five fields such as '0 0 * * *' (daily at midnight)."
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"Environment variable CERKL_SYNC_TIMEZONE is {timezone!r}, not a known time zone; "
            "use an IANA name such as 'UTC' or 'Europe/Berlin'."
        ) from None
    return cron, timezone


def load_config() -> SyncConfig:
    """Read and validate the ``cerkl_sync_config`` Variable; call only inside a task."""
    from airflow.sdk import Variable

    return parse_config(Variable.get(CONFIG_VARIABLE, default=None))


def load_config_from_environment() -> SyncConfig:
    """Read the settings from ``AIRFLOW_VAR_CERKL_SYNC_CONFIG``, for tools outside a task."""
    return parse_config(os.environ.get("AIRFLOW_VAR_" + CONFIG_VARIABLE.upper()))


def load_organization_id() -> str:
    """Read the Account Id under which new Contacts are created; call only inside a task."""
    from airflow.sdk import Variable

    value = (Variable.get(ORGANIZATION_VARIABLE, default=None) or DEFAULT_ORGANIZATION_ID).strip()
    if len(value) not in (15, 18) or not value.isalnum() or not value.startswith("001"):
        raise ConfigError(
            f"Variable {ORGANIZATION_VARIABLE} is {value!r}; it must be a 15- or 18-character "
            "Salesforce Account Id starting with 001."
        )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--print-defaults", action="store_true", help="print the default settings as JSON"
    )
    group.add_argument(
        "--check", metavar="FILE", help="validate a JSON settings file ('-' for standard input)"
    )
    args = parser.parse_args(argv)
    if args.print_defaults:
        print(json.dumps(config_to_dict(SyncConfig()), indent=2))
        return 0
    try:
        if args.check == "-":
            text = sys.stdin.read()
        else:
            with open(args.check, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"invalid: cannot read {args.check} as UTF-8 text ({exc.__class__.__name__})",
            file=sys.stderr,
        )
        return 1
    try:
        parse_config(text)
    except ConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
