"""The demo's summary waits for the timeline to show what the referrals already say."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hub.demo import runner
from hub.demo.journeys import Journey, Step
from hub.settings import Settings


class TimelineViews:
    """Answers timeline reads from a script: each partner's entries, call by call."""

    def __init__(self, script: list[dict[str, list[dict[str, Any]]]]) -> None:
        self.script = script
        self.reads: list[str] = []

    def get(self, partner: str, path: str) -> dict[str, Any]:
        self.reads.append(partner)
        rounds = len(self.reads) - 1
        step = self.script[min(rounds // 2, len(self.script) - 1)]  # two requesters a round
        return {"entries": step.get(partner, [])}


def entry(rid: str, status: str) -> dict[str, Any]:
    return {"referral_id": rid, "status": status, "source_partner": "amt"}


def journey() -> Journey:
    steps = [Step("first", "amt", {}), Step("second", "jobcenter", {})]
    return Journey("j", {}, steps, person_id="p_x", referral_ids=["r1", "r2"])


def demo(lines: list[str]) -> runner.Demo:
    unused = socket.socket()  # the summary never serves: a closed socket stands in
    unused.close()
    return runner.Demo(Settings(), listening=unused, time_scale=0.05, say=lines.append)


def test_waits_until_each_requester_sees_its_step_end() -> None:
    lines: list[str] = []
    early = {"amt": [entry("r1", "in-progress")], "jobcenter": [entry("r2", "completed")]}
    settled = {"amt": [entry("r1", "completed")], "jobcenter": [entry("r2", "completed")]}
    views = TimelineViews([early, settled])
    timeline = demo(lines)._settled_timeline(views, journey())  # type: ignore[arg-type]
    assert timeline["entries"] == settled["amt"]
    assert len(views.reads) == 4  # read again after the first round showed r1 unfinished
    assert not lines


def test_a_step_seen_only_by_another_partner_does_not_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "TIMELINE_SETTLE_SECONDS", 0.6)
    lines: list[str] = []
    # The Amt sees both ends, but the Jobcenter's own view still lacks the end of r2.
    stuck = {
        "amt": [entry("r1", "completed"), entry("r2", "completed")],
        "jobcenter": [entry("r2", "in-progress")],
    }
    timeline = demo(lines)._settled_timeline(TimelineViews([stuck]), journey())  # type: ignore[arg-type]
    assert timeline["entries"] == stuck["amt"]
    assert lines == [
        "  j: Zeitachse noch unvollständig / timeline still catching up"
        " (1 of 2 referrals without their end)"
    ]
