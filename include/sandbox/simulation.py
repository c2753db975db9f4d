"""Seeded two-way convergence simulation of the sync DAG against the sandbox.

``python -m include.sandbox.simulation --days N --seed S`` seeds a small org and runs a full
sync. Then, for each simulated day, it makes random changes on both sides through the sandbox
APIs and controls: creates, name and email edits, opt-outs, self and admin unsubscribes,
Campaign joins and departures. It runs the DAG once for that day and checks:

- every linked pair agrees on first name, last name and email, except fields edited on both
  sides that day, each of which must have a conflict in the run report;
- every opt-out holds on both sides, and nobody who unsubscribed themselves is subscribed;
- no email has two subscribers, and the sync created no second Contact for anyone;
- every in-scope Campaign's segment holds exactly its linked, subscribed Contact members;
- a day without changes issues no write requests.

About one day in four is quiet. The last line is
``simulated days: N, operations: M, checks: K, failures: F``; the exit code is 1 when F > 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)

ORG_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIRST_DAY = datetime(2026, 3, 2, tzinfo=UTC)
QUIET_SHARE = 0.25
SEGMENT_TYPES = ("Distribution List", "Committee", "Board")
MISSING_LAST_NAME = "[not provided]"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN_KEYS = {"POST /services/Soap/u/{version}", "POST /services/oauth2/token", "POST oauth/Token"}
FIRST_NAMES = ("Ada", "Bea", "Chidi", "Dário", "Élodie", "Farah", "Gül", "Hiro", "Ines", "Jonas")
LAST_NAMES = ("Okafor", "Nuñez", "O'Brien", "Kowalska", "Lindqvist", "Mbeki", "Sato", "Weiß")
CONTACT_FIELDS = (
    "Id, FirstName, LastName, Email, HasOptedOutOfEmail, Cerkl_Unsubscribe__c, "
    "Cerkl_Subscriber_Id__c, IsDeleted, AccountId"
)


@dataclass
class SimulationResult:
    """Totals of one simulation and the text of each failed check."""

    days: int = 0
    operations: int = 0
    checks: int = 0
    quiet_days: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"simulated days: {self.days}, operations: {self.operations}, "
            f"checks: {self.checks}, failures: {len(self.failures)}"
        )


@dataclass
class SandboxWorld:
    """The sandbox and DAG a simulation drives.

    :param reset: empties both sandboxes and the sync-state DB.
    :param run: runs the DAG for a logical date with a conf and returns its report.
    """

    salesforce_url: str
    cerkl_url: str
    salesforce: Any
    cerkl: Any
    reset: Callable[[], None]
    run: Callable[[datetime, dict[str, Any]], dict[str, Any] | None]


def _key(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return unicodedata.normalize("NFC", value.strip()) or None


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


class _CerklApi:
    """Minimal Cerkl API v3 client (envelope and bearer token) for the simulated users."""

    def __init__(self, base_url: str) -> None:
        from include.sandbox.local_airflow import CERKL_CLIENT_ID, CERKL_CLIENT_SECRET

        self.base_url = base_url.rstrip("/")
        self.credentials = (CERKL_CLIENT_ID, CERKL_CLIENT_SECRET)
        self.session = requests.Session()
        self.token: str | None = None

    def _authenticate(self) -> None:
        response = self.session.post(
            f"{self.base_url}/oauth/Token",
            auth=self.credentials,
            data={"grant_type": "client_credentials"},
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for _ in range(2):
            if self.token is None:
                self._authenticate()
            response = self.session.request(
                method,
                f"{self.base_url}/{path}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
                **kwargs,
            )
            if response.status_code != 401:
                return response
            # The simulation moves the sandbox clock by days, past the token's lifetime.
            self.token = None
        return response

    def paged(self, path: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.call("GET", path, params={"page": page, "page_size": 1000})
            response.raise_for_status()
            batch = response.json()["template"]["data"]
            records.extend(batch)
            if len(batch) < 1000:
                return records
            page += 1

    def create(self, email: str, first_name: str, last_name: str) -> dict[str, Any] | None:
        body = {
            "template": {
                "version": "3.0",
                "data": [
                    {
                        "email": email,
                        "first_name": first_name,
                        "last_name": last_name,
                        "subscriber_status": {"id": 1},
                        "subscriber_privacy_level": {"id": 1},
                    }
                ],
            }
        }
        response = self.call("POST", "subscriber", json=body)
        return response.json()["template"]["data"][0] if response.status_code == 200 else None

    def admin_unsubscribe(self, subscriber_id: int) -> bool:
        return self.call("DELETE", f"subscriber/{subscriber_id}").status_code == 200


@dataclass
class _Snapshot:
    contacts: dict[str, dict[str, Any]]
    subscribers: dict[int, dict[str, Any]]
    unsubscribes: dict[int, dict[str, Any]]
    segments: dict[str, set[int]]
    campaigns: list[dict[str, Any]]
    members: list[dict[str, Any]]


class Simulation:
    """One seeded simulation over a :class:`SandboxWorld`.

    :param contacts: Contacts in the seeded org; subscribers are about two thirds of it.
    """

    def __init__(self, world: SandboxWorld, *, seed: int, contacts: int = 300) -> None:
        from simple_salesforce import Salesforce

        from include.cerkl_sync.salesforce_transport import build_salesforce_session
        from include.sandbox.local_airflow import (
            SALESFORCE_PASSWORD,
            SALESFORCE_TOKEN,
            SALESFORCE_USERNAME,
        )

        self.world = world
        self.seed = seed
        self.contact_count = contacts
        self.rng = random.Random(seed)
        self.sf = Salesforce(
            username=SALESFORCE_USERNAME,
            password=SALESFORCE_PASSWORD,
            security_token=SALESFORCE_TOKEN,
            session=build_salesforce_session(world.salesforce_url),
        )
        self.api = _CerklApi(world.cerkl_url)
        self.result = SimulationResult()
        self.sequence = 0
        self.self_unsubscribed: set[str] = set()
        self.baseline_emails: Counter[str] = Counter()

    # Setup

    def seed_org(self) -> None:
        from include.sandbox.generator import OrgSpec, generate_org

        self.world.reset()
        self._set_clocks(ORG_NOW)
        org = generate_org(
            OrgSpec(
                seed=self.seed,
                contacts=self.contact_count,
                subscribers=self.contact_count * 2 // 3,
                campaigns=8,
                leads=10,
                self_unsubscribes=8,
                admin_unsubscribes=4,
                now=ORG_NOW,
            )
        )
        self.world.salesforce.seed(
            {
                name: [_jsonable(r) for r in org.salesforce_records(name)]
                for name in ("Account", "Contact", "Lead", "Campaign", "CampaignMember")
            }
        )
        cerkl = {
            name: [_jsonable(r) for r in org.cerkl_records(name)]
            for name in ("categories", "subscribers", "unsubscribes", "interests", "segments")
        }
        self.world.cerkl.seed(cerkl)
        for unsubscribe in cerkl["unsubscribes"]:
            if unsubscribe.get("self_unsubscribed"):
                self.self_unsubscribed.add(_key(unsubscribe["email"]) or "")

    def _set_clocks(self, when: datetime) -> None:
        for client in (self.world.salesforce, self.world.cerkl):
            client.set_clock(when)

    # The days

    def run(self, days: int, progress: Callable[[str], None] | None = None) -> SimulationResult:
        """Seed, fully sync, then simulate ``days`` days; return the totals.

        :param progress: called with one line after each simulated day.
        """
        self.seed_org()
        self._set_clocks(FIRST_DAY + timedelta(minutes=5))
        report = self.world.run(FIRST_DAY, {"full_sync": True})
        self._check_run(report, "full sync")
        snapshot = self._snapshot()
        self.baseline_emails = Counter(
            _key(c["Email"]) for c in snapshot.contacts.values() if _key(c["Email"])
        )
        self._check_state(snapshot, report, "full sync", edited_both=set(), counters=None)
        for number in range(1, days + 1):
            day = FIRST_DAY + timedelta(days=number - 1)
            quiet = self.is_quiet(number)
            edited_both: set[tuple[str, str]] = set()
            if not quiet:
                edited_both = self._make_changes(day, snapshot)
            for client in (self.world.salesforce, self.world.cerkl):
                client.reset_counters()
            self._set_clocks(day + timedelta(days=1, minutes=5))
            report = self.world.run(day + timedelta(days=1), {})
            counters = {
                "salesforce": self.world.salesforce.counters(),
                "cerkl": self.world.cerkl.counters(),
            }
            label = f"day {number}" + (" (quiet)" if quiet else "")
            self._check_run(report, label)
            snapshot = self._snapshot()
            self._check_state(
                snapshot, report, label, edited_both, counters=counters if quiet else None
            )
            self.result.days += 1
            self.result.quiet_days += int(quiet)
            if progress is not None:
                progress(
                    f"{label}: {self.result.operations} operations, "
                    f"{len(self.result.failures)} failures so far"
                )
        return self.result

    def is_quiet(self, number: int) -> bool:
        """Tell whether day ``number`` (from 1) has no changes; the first day never is."""
        draw = random.Random(f"{self.seed}:quiet:{number}").random()
        return number > 1 and draw < QUIET_SHARE

    def _unique_email(self) -> str:
        self.sequence += 1
        return f"sim.{self.seed}.{self.sequence}@example.net"

    def _make_changes(self, day: datetime, snapshot: _Snapshot) -> set[tuple[str, str]]:
        """Make random changes on both sides during ``day``; return fields edited on both."""
        active = snapshot.subscribers
        pairs = [
            (c, active[int(c["Cerkl_Subscriber_Id__c"])])
            for c in snapshot.contacts.values()
            if c["Cerkl_Subscriber_Id__c"]
            and int(c["Cerkl_Subscriber_Id__c"]) in active
            and not c["IsDeleted"]
        ]
        self.rng.shuffle(pairs)
        sf_edits: set[tuple[str, str]] = set()
        cerkl_edits: set[tuple[str, str]] = set()
        operations: list[Callable[[], None]] = []

        def sf_edit(contact: dict[str, Any], name: str) -> Callable[[], None]:
            def run() -> None:
                field_name = {"first_name": "FirstName", "last_name": "LastName"}[name]
                value = self.rng.choice(FIRST_NAMES if name == "first_name" else LAST_NAMES)
                value = f"{value}-{self.sequence}"
                self.sequence += 1
                self.sf.Contact.update(contact["Id"], {field_name: value})
                sf_edits.add((contact["Id"], name))

            return run

        def cerkl_edit(contact: dict[str, Any], subscriber_id: int, name: str) -> Callable:
            def run() -> None:
                value = self.rng.choice(FIRST_NAMES if name == "first_name" else LAST_NAMES)
                value = f"{value}-c{self.sequence}"
                self.sequence += 1
                self.world.cerkl.edit_subscriber(subscriber_id, **{name: value})
                cerkl_edits.add((contact["Id"], name))

            return run

        def sf_email(contact: dict[str, Any]) -> Callable[[], None]:
            def run() -> None:
                self.sf.Contact.update(contact["Id"], {"Email": self._unique_email()})
                sf_edits.add((contact["Id"], "email"))

            return run

        def cerkl_email(contact: dict[str, Any], subscriber_id: int) -> Callable[[], None]:
            def run() -> None:
                self.world.cerkl.edit_subscriber(subscriber_id, email=self._unique_email())
                cerkl_edits.add((contact["Id"], "email"))

            return run

        def sf_opt_out(contact: dict[str, Any]) -> Callable[[], None]:
            def run() -> None:
                flag = self.rng.choice(("HasOptedOutOfEmail", "Cerkl_Unsubscribe__c"))
                self.sf.Contact.update(contact["Id"], {flag: True})

            return run

        def self_unsubscribe(subscriber: dict[str, Any]) -> Callable[[], None]:
            def run() -> None:
                self.world.cerkl.self_unsubscribe(int(subscriber["id"]))
                self.self_unsubscribed.add(_key(subscriber["email"]) or "")

            return run

        def admin_unsubscribe(subscriber: dict[str, Any]) -> Callable[[], None]:
            def run() -> None:
                self.api.admin_unsubscribe(int(subscriber["id"]))

            return run

        def sf_create() -> None:
            self.sf.Contact.create(
                {
                    "FirstName": self.rng.choice(FIRST_NAMES),
                    "LastName": self.rng.choice(LAST_NAMES),
                    "Email": self._unique_email(),
                }
            )

        def cerkl_create() -> None:
            self.api.create(
                self._unique_email(), self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            )

        in_scope = [
            c for c in snapshot.campaigns if c["Type"] in SEGMENT_TYPES and not c["IsDeleted"]
        ]
        linked_contacts = [c for c, _ in pairs]

        # Members as they are during the day: joins add to it and departures take from it.
        members = [dict(m) for m in snapshot.members]
        in_scope_ids = {c["Id"] for c in in_scope}

        def join() -> None:
            campaign = self.rng.choice(in_scope)
            present = {m["ContactId"] for m in members if m["CampaignId"] == campaign["Id"]}
            choices = [c for c in linked_contacts if c["Id"] not in present]
            if choices:
                contact = self.rng.choice(choices)
                created = self.sf.CampaignMember.create(
                    {"CampaignId": campaign["Id"], "ContactId": contact["Id"]}
                )
                members.append(
                    {"Id": created["id"], "CampaignId": campaign["Id"], "ContactId": contact["Id"]}
                )

        def leave() -> None:
            rows = [m for m in members if m["CampaignId"] in in_scope_ids and m.get("ContactId")]
            if rows:
                row = self.rng.choice(rows)
                self.sf.CampaignMember.delete(row["Id"])
                members.remove(row)

        # Each pair gets one kind of change (some kinds touch both sides), so the expected end
        # state of every field is known: one side's edit, or both sides' edits and a conflict.
        used = iter(pairs)
        counts = {
            "sf_edit": self.rng.randint(1, 4),
            "cerkl_edit": self.rng.randint(1, 4),
            "both_edit": self.rng.randint(0, 2),
            "sf_email": self.rng.randint(0, 2),
            "cerkl_email": self.rng.randint(0, 2),
            "sf_opt_out": self.rng.randint(0, 2),
            "self_unsubscribe": self.rng.randint(0, 2),
            "admin_unsubscribe": self.rng.randint(0, 1),
            "both_email": self.rng.randint(0, 1),
            "edit_and_self_unsubscribe": self.rng.randint(0, 1),
            "opt_out_and_cerkl_edit": self.rng.randint(0, 1),
        }
        for kind, count in counts.items():
            for _ in range(count):
                contact, subscriber = next(used, (None, None))
                if contact is None:
                    break
                subscriber_id = int(subscriber["id"])
                name = self.rng.choice(("first_name", "last_name"))
                if kind == "sf_edit":
                    operations.append(sf_edit(contact, name))
                elif kind == "cerkl_edit":
                    operations.append(cerkl_edit(contact, subscriber_id, name))
                elif kind == "both_edit":
                    operations.append(sf_edit(contact, name))
                    operations.append(cerkl_edit(contact, subscriber_id, name))
                elif kind == "sf_email":
                    operations.append(sf_email(contact))
                elif kind == "cerkl_email":
                    operations.append(cerkl_email(contact, subscriber_id))
                elif kind == "sf_opt_out":
                    operations.append(sf_opt_out(contact))
                elif kind == "self_unsubscribe":
                    operations.append(self_unsubscribe(subscriber))
                elif kind == "both_email":
                    operations.append(sf_email(contact))
                    operations.append(cerkl_email(contact, subscriber_id))
                elif kind == "edit_and_self_unsubscribe":
                    operations.append(sf_edit(contact, name))
                    operations.append(self_unsubscribe(subscriber))
                elif kind == "opt_out_and_cerkl_edit":
                    operations.append(sf_opt_out(contact))
                    operations.append(cerkl_edit(contact, subscriber_id, name))
                else:
                    operations.append(admin_unsubscribe(subscriber))
        operations += [sf_create] * self.rng.randint(0, 3)
        operations += [cerkl_create] * self.rng.randint(0, 3)
        if in_scope:
            operations += [join] * self.rng.randint(0, 3)
            operations += [leave] * self.rng.randint(0, 2)

        # The edits happen during the day, in order, a few minutes apart.
        when = day + timedelta(hours=8)
        for operation in operations:
            self._set_clocks(when)
            operation()
            when += timedelta(minutes=7)
        self.result.operations += len(operations)
        return sf_edits & cerkl_edits

    # Reading both sides

    def _snapshot(self) -> _Snapshot:
        contacts = {
            row["Id"]: row
            for row in self.sf.query_all(f"SELECT {CONTACT_FIELDS} FROM Contact")["records"]
        }
        subscribers = {int(s["id"]): s for s in self.api.paged("subscriber")}
        unsubscribes = {int(u["id"]): u for u in self.api.paged("unsubscribe")}
        segments: dict[str, set[int]] = {}
        for segment in self.api.paged("segment"):
            if segment.get("external_id"):
                members = self.api.paged(f"segment/{segment['id']}/subscriber")
                segments[segment["external_id"]] = {int(m["id"]) for m in members}
        campaigns = self.sf.query_all("SELECT Id, Name, Type, IsDeleted FROM Campaign")["records"]
        members = self.sf.query_all("SELECT Id, CampaignId, ContactId, LeadId FROM CampaignMember")[
            "records"
        ]
        return _Snapshot(contacts, subscribers, unsubscribes, segments, campaigns, members)

    # Checks

    def _check(self, passed: bool, label: str, message: str) -> None:
        self.result.checks += 1
        if not passed:
            self.result.failures.append(f"{label}: {message}")
            log.warning("Check failed on %s: %s", label, message)

    def _check_run(self, report: dict[str, Any] | None, label: str) -> None:
        self._check(report is not None, label, "the run wrote no report")
        if report is not None:
            self._check(
                report["state"] == "success",
                label,
                f"the run failed in {[t['task_id'] for t in report['failed_tasks']]}",
            )

    def _check_state(
        self,
        snapshot: _Snapshot,
        report: dict[str, Any] | None,
        label: str,
        edited_both: set[tuple[str, str]],
        counters: dict[str, Any] | None,
    ) -> None:
        report = report or {"conflicts": []}
        conflicts = {(c["contact_id"], c["field"]) for c in report["conflicts"]}
        self._check_pairs(snapshot, label, edited_both, conflicts)
        self._check_opt_outs(snapshot, label)
        self._check_duplicates(snapshot, label)
        self._check_segments(snapshot, label)
        if counters is not None:
            writes = {system: _write_calls(counters[system]) for system in ("salesforce", "cerkl")}
            self._check(
                not writes["salesforce"] and not writes["cerkl"],
                label,
                f"a quiet day issued writes: {writes}",
            )

    def _check_pairs(
        self,
        snapshot: _Snapshot,
        label: str,
        edited_both: set[tuple[str, str]],
        conflicts: set[tuple[str, str]],
    ) -> None:
        for contact in snapshot.contacts.values():
            raw = contact["Cerkl_Subscriber_Id__c"]
            if contact["IsDeleted"] or not raw or int(raw) not in snapshot.subscribers:
                continue
            subscriber = snapshot.subscribers[int(raw)]
            for name, sf_field in (
                ("first_name", "FirstName"),
                ("last_name", "LastName"),
                ("email", "Email"),
            ):
                if (contact["Id"], name) in edited_both:
                    self._check(
                        (contact["Id"], name) in conflicts,
                        label,
                        f"Contact {contact['Id']} {name} was edited on both sides "
                        "but the report has no conflict",
                    )
                if name == "email":
                    same = _key(contact["Email"]) == _key(subscriber["email"])
                else:
                    sf_value = _text(contact[sf_field])
                    cerkl_value = _text(subscriber.get(name))
                    if name == "last_name" and sf_value == MISSING_LAST_NAME:
                        sf_value = None
                    same = sf_value == cerkl_value or (cerkl_value is None and name != "email")
                self._check(
                    same,
                    label,
                    f"Contact {contact['Id']} and subscriber {raw} differ in {name}",
                )

    def _check_opt_outs(self, snapshot: _Snapshot, label: str) -> None:
        active_by_email = {_key(s["email"]): s for s in snapshot.subscribers.values()}
        for contact in snapshot.contacts.values():
            if contact["IsDeleted"]:
                continue
            opted_out = contact["HasOptedOutOfEmail"] or contact["Cerkl_Unsubscribe__c"]
            raw = contact["Cerkl_Subscriber_Id__c"]
            if opted_out:
                self._check(
                    not raw or int(raw) not in snapshot.subscribers,
                    label,
                    f"opted-out Contact {contact['Id']} has an active subscriber {raw}",
                )
            if raw and int(raw) in snapshot.unsubscribes:
                self._check(
                    bool(opted_out),
                    label,
                    f"Contact {contact['Id']} of unsubscribe {raw} is not opted out",
                )
        for email in self.self_unsubscribed:
            subscriber = active_by_email.get(email)
            self._check(
                subscriber is None,
                label,
                f"subscriber {subscriber and subscriber['id']} unsubscribed themselves "
                "and is subscribed again",
            )

    def _check_duplicates(self, snapshot: _Snapshot, label: str) -> None:
        subscriber_emails = Counter(_key(s["email"]) for s in snapshot.subscribers.values())
        doubled = [email for email, count in subscriber_emails.items() if count > 1]
        self._check(not doubled, label, f"{len(doubled)} emails have two subscribers")
        holders = Counter(
            str(c["Cerkl_Subscriber_Id__c"])
            for c in snapshot.contacts.values()
            if c["Cerkl_Subscriber_Id__c"] and not c["IsDeleted"]
        )
        shared = [sid for sid, count in holders.items() if count > 1]
        self._check(not shared, label, f"subscribers held by several Contacts: {shared[:5]}")
        emails = Counter(
            _key(c["Email"])
            for c in snapshot.contacts.values()
            if _key(c["Email"]) and not c["IsDeleted"]
        )
        extra = [
            email for email, count in emails.items() if count > max(1, self.baseline_emails[email])
        ]
        self._check(not extra, label, f"{len(extra)} emails got a second Contact")

    def _check_segments(self, snapshot: _Snapshot, label: str) -> None:
        linked = {
            c["Id"]: int(c["Cerkl_Subscriber_Id__c"])
            for c in snapshot.contacts.values()
            if c["Cerkl_Subscriber_Id__c"] and not c["IsDeleted"]
        }
        for campaign in snapshot.campaigns:
            if campaign["Type"] not in SEGMENT_TYPES or campaign["IsDeleted"]:
                continue
            wanted = {
                linked[m["ContactId"]]
                for m in snapshot.members
                if m["CampaignId"] == campaign["Id"] and m.get("ContactId") in linked
            } & set(snapshot.subscribers)
            segment = snapshot.segments.get(f"SF_{campaign['Id']}")
            self._check(
                segment == wanted,
                label,
                f"segment of Campaign {campaign['Id']} has "
                f"{len(segment or ())} members, expected {len(wanted)}",
            )


def _write_calls(counters: dict[str, Any]) -> dict[str, int]:
    return {
        key: count
        for key, count in counters["by_endpoint"].items()
        if key.split(" ", 1)[0] in WRITE_METHODS
        and key not in LOGIN_KEYS
        and "/query" not in key
        and not key.endswith("/jobs/query")
    }


def local_world(work_dir: Path) -> tuple[SandboxWorld, Callable[[], None]]:
    """Start the sandbox and set up Airflow in ``work_dir``; return the world and a stop.

    ``AIRFLOW_HOME`` is set to ``work_dir/airflow`` unless the environment sets it, so this
    must run before anything in the process imports Airflow.
    """
    os.environ.setdefault("AIRFLOW_HOME", str(work_dir / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    repo = Path(__file__).resolve().parents[2]
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(repo / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(repo / "plugins"))
    os.environ.setdefault("CERKL_SYNC_RETRY_DELAY_SECONDS", "1")
    os.environ.setdefault("CERKL_SYNC_TASK_RETRIES", "1")
    # Task logs of every DAG run would bury the simulation's own output.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

    from include.cerkl_sync.state import SyncStateStore
    from include.sandbox.client import SandboxControlClient
    from include.sandbox.local_airflow import (
        configure_environment,
        load_dag,
        migrate_airflow_db,
        run_dag,
    )
    from include.sandbox.runner import start_sandbox

    sandbox = start_sandbox(work_dir / "sandbox-data")
    state_path = work_dir / "state.db"
    configure_environment(
        salesforce_url=sandbox.salesforce_url,
        cerkl_url=sandbox.cerkl_url,
        state_url=f"sqlite:///{state_path}",
        work_dir=work_dir,
    )
    migrate_airflow_db()
    dag = load_dag()
    salesforce = SandboxControlClient(sandbox.salesforce_url)
    cerkl = SandboxControlClient(sandbox.cerkl_root_url)

    def reset() -> None:
        for client in (salesforce, cerkl):
            client.reset()
        for suffix in ("", "-wal", "-shm"):
            Path(str(state_path) + suffix).unlink(missing_ok=True)
        store = SyncStateStore(f"sqlite:///{state_path}")
        store.migrate()
        store.dispose()

    def run(logical_date: datetime, conf: dict[str, Any]) -> dict[str, Any] | None:
        return run_dag(dag, logical_date, conf).report

    world = SandboxWorld(
        salesforce_url=sandbox.salesforce_url,
        cerkl_url=sandbox.cerkl_url,
        salesforce=salesforce,
        cerkl=cerkl,
        reset=reset,
        run=run,
    )

    def stop() -> None:
        salesforce.close()
        cerkl.close()
        sandbox.stop()

    return world, stop


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text}: use a whole number of 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.sandbox.simulation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--days", type=_positive, required=True, help="simulated days to run")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument(
        "--contacts", type=_positive, default=300, help="Contacts in the seeded org"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="cerkl-sync-simulation-") as folder:
        world, stop = local_world(Path(folder))
        try:
            simulation = Simulation(world, seed=args.seed, contacts=args.contacts)
            result = simulation.run(args.days, progress=lambda line: print(line, flush=True))
        finally:
            stop()
    for failure in result.failures:
        print(f"FAILED {failure}")
    print(result.summary())
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
