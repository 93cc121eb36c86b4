"""``hub demo``: the hub with a simulated system per partner, playing client journeys.

Everything runs in this process on loopback: the embedded broker, the gateway, relay,
consumers and push delivery, and five partner simulators with their own OAuth servers that
answer with realistic status progressions through the hub's API.
"""

from __future__ import annotations

import importlib
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from connectors.simulator import HubClient, SimulatorServer
from hub import gateway, runtime
from hub.app import create_app
from hub.bootstrap import Hub, bootstrap, kafka_probe
from hub.db import unit_of_work
from hub.demo.journeys import Journey, Step, all_journeys
from hub.kafka.client import ensure_topics
from hub.partners.models import Partner
from hub.partners.service import connect_partner
from hub.settings import Settings
from hub.web.accounts import PURPOSES, add_staff
from schemas.labels import label
from schemas.lifecycle import TERMINAL, Status

KINDS = {
    "amt": "authority",
    "ude": "university",
    "ihk-fosa": "chamber",
    "hwk": "chamber",
    "jobcenter": "jobcenter",
}

#: How long the summary waits for the timeline to show what the referrals already say.
TIMELINE_SETTLE_SECONDS = 60.0
#: The staff account each demo run makes, with a new password, to show the staff UI.
STAFF_EMAIL = "demo@talent-center.duisburg.de"


class Demo:
    """One demo run on the gateway socket ``listening``; ``say`` receives the progress lines.

    The socket is bound before the run (hub.gateway.listen), so that the demo never plays
    its journeys against another hub that holds the port."""

    def __init__(
        self,
        settings: Settings,
        *,
        listening: socket.socket,
        time_scale: float,
        say: Callable[[str], None],
    ) -> None:
        self.base_settings = settings
        self.listening = listening
        self.time_scale = time_scale
        self.say = say
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sims: list[SimulatorServer] = []
        self.creds: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.staff_password = secrets.token_urlsafe(12)
        self.url = f"http://{settings.http_host}:{settings.http_port}"

    def run(self, *, exit_when_done: bool) -> bool:
        """Play every journey; True when all completed. Stays up until stopped unless told."""
        # Demo data is throw-away: each run starts from an empty data directory.
        shutil.rmtree(self.base_settings.data_dir, ignore_errors=True)
        with runtime.kafka_for(self.base_settings) as settings:
            hub = bootstrap(settings)
            self.creds = {c["partner_id"]: c for c in runtime.prepare_database(hub)}
            runtime.store_credentials(settings, list(self.creds.values()))
            runtime.record_policy_in_force(hub)
            self._prepare_staff(hub)
            ensure_topics(
                hub.bootstrap_servers, runtime.topic_plan(hub), security=hub.kafka_security
            )
            server, serving = self._serve(hub)
            try:
                self._start_partners(hub)
                self._start_workers(hub)
                done = self._play(all_journeys())
                self._staff_links()
                if not exit_when_done:
                    self.say("Ctrl-C beendet die Demo / Ctrl-C stops the demo")
                    self.stop.wait()
                return done
            finally:
                self._shutdown(server, serving)

    def _prepare_staff(self, hub: Hub) -> None:
        """Partner names for the story lines, and a team lead account for the staff UI."""
        with unit_of_work(hub.session_factory) as session:
            self.names = {p.id: p.name for p in session.query(Partner)}
            add_staff(
                session,
                email=STAFF_EMAIL,
                role="team_lead",
                purposes=list(PURPOSES),
                password=self.staff_password,
            )

    def _staff_links(self) -> None:
        self.say("Oberfläche für Mitarbeitende / staff UI:")
        self.say(f"  {self.url}/staff/login")
        self.say(f"  E-Mail: {STAFF_EMAIL}  Passwort / password: {self.staff_password}")
        self.say(f"  Rückstände / backlog: {self.url}/staff/dashboard")

    def _name(self, partner_id: str) -> str:
        return self.names.get(partner_id, partner_id)

    def _serve(self, hub: Hub) -> tuple[uvicorn.Server, threading.Thread]:
        app = create_app(hub, kafka_check=kafka_probe(hub))
        server = gateway.server(app, hub.settings, access_log=False)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self.listening]}, name="gateway", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            server.should_exit = True
            raise DemoError(
                "Das Gateway der Demo ist nicht gestartet (siehe oben)"
                " / the demo's gateway did not start (see above)"
            )
        self.say(f"Hub: {self.url}  (API: {self.url}/docs)")
        return server, thread

    def _start_partners(self, hub: Hub) -> None:
        with unit_of_work(hub.session_factory) as session:
            for pid, kind in KINDS.items():
                sim = self._simulator(pid, kind)
                connect_partner(session, partner_id=pid, config=sim)
        self.say(f"{len(KINDS)} Partnersysteme simuliert / partner systems simulated")

    def _simulator(self, partner_id: str, kind: str) -> dict[str, Any]:
        client_id, secret, signing = (
            f"talent-hub-{partner_id}",
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
        )
        own = self.creds[partner_id]
        app = importlib.import_module(f"connectors.{kind}.simulator").build(
            time_scale=self.time_scale,
            client_id=client_id,
            client_secret=secret,
            signing_secret=signing,
            hub=HubClient(self.url, own["client_id"], own["client_secret"]),
        )
        server = SimulatorServer(app).start()
        self.sims.append(server)
        self.say(f"  {partner_id:<10} {server.url}/webhook")
        return {
            "mode": "push",
            "endpoint_url": f"{server.url}/webhook",
            "token_endpoint": f"{server.url}/oauth/token",
            "client_id": client_id,
            "credential_ref": f"value:{secret}",
            "signing_secret_ref": f"value:{signing}",
        }

    def _start_workers(self, hub: Hub) -> None:
        registry = importlib.import_module("consumers.registry")
        self.threads += runtime.start_relay(hub, self.stop)
        self.threads += [
            runtime.start_thread(n, registry.build_runner(n, hub).run, self.stop)
            for n in registry.NAMES
        ]
        self.threads += [
            runtime.start_thread(r.name, r.run, self.stop)
            for r in registry.build_delivery_runners(hub)
        ]
        self.threads.append(runtime.start_deadline_scheduler(hub, self.stop))
        self.threads.append(runtime.start_sequencer(hub, self.stop))

    def _play(self, journeys: list[Journey]) -> bool:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            api = _Api(http, self.creds)
            deadline = time.monotonic() + max(120.0, 600 * self.time_scale)
            while not self.stop.is_set() and time.monotonic() < deadline:
                finished = [self._advance(api, j) for j in journeys]  # all move each tick
                if all(finished):
                    self._summary(api, journeys)
                    return True
                self.stop.wait(0.5)
        self.say("Nicht alle Fallverläufe wurden abgeschlossen / not all journeys completed")
        return False

    def _advance(self, api: _Api, journey: Journey) -> bool:
        """Move a journey on; True once its last step has ended."""
        self._watch_follow_up(api, journey)
        index = len(journey.referral_ids)
        if index and not self._ended(api, journey, journey.referral_ids[-1]):
            return False
        if index == len(journey.steps):
            return not (journey.partial_equivalence and not journey.follow_ups)
        step = journey.steps[index]
        rid, person_id = api.request(step, journey)
        journey.referral_ids.append(rid)
        journey.person_id = journey.person_id or person_id
        self.say(
            f"[{journey.name}] {step.label}: {self._name(step.requester)}"
            f" -> {_both('status', Status.REQUESTED.value)}"
        )
        return False

    def _ended(self, api: _Api, journey: Journey, rid: str) -> bool:
        index = len(journey.referral_ids) - 1
        step = journey.steps[index]
        view = api.get(step.requester, f"/v1/referrals/{rid}")
        status = Status(view["status"])
        mark = (rid, status.value, view["business_status"])
        if mark not in journey.seen:
            journey.seen.add(mark)
            if status != Status.REQUESTED:
                business = view["business_status"]
                self.say(
                    f"[{journey.name}] {step.label}: {_both('status', status.value)}"
                    + (f" ({_both('business', business)})" if business else "")
                )
        if view["business_status"] == "DECISION_PARTIAL_EQUIVALENCE":
            journey.partial_equivalence = True
        return status in TERMINAL

    def _watch_follow_up(self, api: _Api, journey: Journey) -> None:
        """The chamber's simulator asks the Amt for the adaptation qualification by itself."""
        if not journey.partial_equivalence or journey.follow_ups:
            return
        page = api.get("amt", "/v1/referrals?type=recognition.adaptation&role=performer")
        for item in page["items"]:
            if item["person_id"] == journey.person_id:
                journey.follow_ups.append(item["id"])
                self.say(
                    f"[{journey.name}] {self._name(item['requester'])} -> {self._name('amt')}:"
                    " Anpassungsqualifizierung angefragt / adaptation qualification requested"
                )

    def _summary(self, api: _Api, journeys: list[Journey]) -> None:
        self.say("Alle Fallverläufe abgeschlossen / all journeys completed")
        for journey in journeys:
            timeline = self._settled_timeline(api, journey)
            partners = sorted({self._name(e["source_partner"]) for e in timeline["entries"]})
            self.say(
                f"  {journey.name}: person {journey.person_id}, "
                f"{len(timeline['entries'])} timeline entries from {', '.join(partners)}"
            )
            self.say(f"    {self.url}/staff/people/{journey.person_id}")

    def _settled_timeline(self, api: _Api, journey: Journey) -> dict[str, Any]:
        """The first requester's view of the person's timeline, once every step's requester
        sees that step's end on it.

        Referral status is read from the hub's database; the timeline is projected from the
        event topic by its own consumer and may trail it by a poll or a group join."""
        path = f"/v1/people/{journey.person_id}/timeline"
        terminal = {s.value for s in TERMINAL}
        deadline = time.monotonic() + TIMELINE_SETTLE_SECONDS
        while True:
            views = {s.requester: api.get(s.requester, path) for s in journey.steps}
            missing = [
                rid
                for step, rid in zip(journey.steps, journey.referral_ids, strict=True)
                if not any(
                    e["referral_id"] == rid and e["status"] in terminal
                    for e in views[step.requester]["entries"]
                )
            ]
            if not missing or self.stop.is_set():
                return views[journey.steps[0].requester]
            if time.monotonic() >= deadline:
                self.say(
                    f"  {journey.name}: Zeitachse noch unvollständig / timeline still catching up"
                    f" ({len(missing)} of {len(journey.referral_ids)} referrals without their end)"
                )
                return views[journey.steps[0].requester]
            self.stop.wait(0.5)

    def _shutdown(self, server: uvicorn.Server, serving: threading.Thread) -> None:
        """Answer the requests in flight, then stop the workers and the partners' systems."""
        server.should_exit = True
        self.stop.set()
        serving.join(timeout=gateway.DRAIN_SECONDS + 1)
        runtime.join_all(self.threads)
        for sim in self.sims:
            sim.stop()


def _both(kind: str, code: str) -> str:
    """A catalogue code in German and English: "in Bearbeitung / in progress"."""
    german, english = label("de", f"{kind}.{code}", code), label("en", f"{kind}.{code}", code)
    return german if german == english else f"{german} / {english}"


class DemoError(RuntimeError):
    """The hub refused a step of a journey (the text says why)."""


class _Api:
    """The demo's partner-side HTTP calls, each with that partner's own token."""

    def __init__(self, http: httpx.Client, creds: dict[str, dict[str, Any]]) -> None:
        self.http = http
        self.creds = creds
        self.tokens: dict[str, str] = {}

    def _auth(self, partner: str) -> dict[str, str]:
        if partner not in self.tokens:
            c = self.creds[partner]
            r = self.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(c["client_id"], c["client_secret"]),
            )
            r.raise_for_status()
            self.tokens[partner] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[partner]}"}

    def get(self, partner: str, path: str) -> dict[str, Any]:
        r = self.http.get(path, headers=self._auth(partner))
        r.raise_for_status()
        return dict(r.json())

    def request(self, step: Step, journey: Journey) -> tuple[str, str]:
        if step.native is not None and step.native_kind:
            result = self.native(step.requester, step.native_kind, step.native)
            return result["id"], result["person_id"]
        person = {"id": journey.person_id} if journey.person_id else journey.person
        r = self.http.post(
            "/v1/referrals",
            json={**(step.body or {}), "person": person},
            headers=self._auth(step.requester),
        )
        _check(r, f"{step.requester}: {step.label}")
        return r.json()["id"], r.json()["person_id"]

    def native(self, partner: str, kind: str, message: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(
            f"/v1/connectors/{kind}/messages", json=message, headers=self._auth(partner)
        )
        _check(r, f"{partner}: {kind} message")
        return dict(r.json()["operations"][0])


def _check(response: httpx.Response, what: str) -> None:
    if response.is_error:
        raise DemoError(f"{what} refused ({response.status_code}): {response.text}")
