"""Mein Verfahren over HTTP: a client signs in with a code and birth date, sees their case
in plain words and every use of their data with a proof that checks against the signed
checkpoint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.hubtest import Partners
from tests.portalweb import (
    PORTAL,
    csrf_of,
    invite,
    portal_client,
    sequence,
    sign_in,
    student_case,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_a_client_follows_the_case_in_plain_german(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)

    signed = sign_in(browser, code, "03.04.2001")
    assert signed.status_code == 303, signed.text
    page = browser.get(PORTAL + "/")
    assert page.status_code == 200
    text = page.text
    assert "Aufenthaltserlaubnis zum Studium" in text
    assert "Es fehlen noch Unterlagen." in text
    assert "Bitte schicken Sie die fehlenden Unterlagen an" in text
    assert "Sie sind am Zug." in text
    # What the route keeps from the client never reaches the page.
    for secret in ("Akte 4711", "Mietvertrag", "ES012345601", case.person_id, case.referral_id):
        assert secret not in text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_the_access_list_names_organisations_and_roles_and_each_entry_proves(
    hub_and_partners: tuple[Hub, Partners], client: TestClient, tmp_path: Path
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners)
    amt = partners.headers(client, "amt")
    assert client.get(f"/v1/referrals/{case.referral_id}", headers=amt).status_code == 200
    sequence(hub)
    browser = portal_client(hub)
    assert (
        sign_in(browser, invite(hub, case.person_id, language="en"), "2001-04-03").status_code
        == 303
    )

    listing = browser.get(PORTAL + "/zugriffe")
    assert listing.status_code == 200
    assert "fetched your data" in listing.text
    links = re.findall(r'href="/mein-verfahren/nachweis/(\d+)"', listing.text)
    assert links, listing.text
    answer = browser.get(f"{PORTAL}/nachweis/{links[0]}.json")
    assert answer.status_code == 200, answer.text
    proof = answer.json()
    assert proof["leaf"] and '"action":"api.read"' in proof["leaf"]
    keys = client.get("/audit/v1/keys").text.split()

    block = re.search(r"<!-- audit-check -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert block
    script = tmp_path / "check.py"
    script.write_text(block.group(1))
    import json

    checked = subprocess.run(
        [sys.executable, str(script), keys[-1]],
        input=json.dumps(proof),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_code_works_once_and_wrong_birth_dates_use_it_up(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)
    for _ in range(4):
        wrong = sign_in(browser, code, "2001-04-04")
        assert wrong.status_code == 401
        assert "Das hat nicht geklappt" in wrong.text
    assert sign_in(browser, code, "2001-04-03").status_code == 303
    again = portal_client(hub)
    assert sign_in(again, code, "2001-04-03").status_code == 401

    second = invite(hub, case.person_id)
    for _ in range(5):
        assert sign_in(portal_client(hub), second, "1999-01-01").status_code == 401
    assert sign_in(portal_client(hub), second, "2001-04-03").status_code == 401


def test_forms_need_their_token_and_logging_out_ends_the_session(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)
    browser.get(PORTAL + "/")
    forged = browser.post(
        PORTAL + "/", data={"code": code, "birth_date": "2001-04-03", "csrf_token": "x"}
    )
    assert forged.status_code == 403
    assert sign_in(browser, code, "2001-04-03").status_code == 303
    page = browser.get(PORTAL + "/")
    assert browser.post(PORTAL + "/abmelden", data={"csrf_token": "nope"}).status_code == 403
    out = browser.post(PORTAL + "/abmelden", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 200 and "abgemeldet" in out.text
    assert "Aufenthaltserlaubnis" not in browser.get(PORTAL + "/").text


def test_a_caseworker_prints_a_letter_whose_code_opens_the_case_and_can_revoke_it(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    from hub.db import unit_of_work
    from hub.web.accounts import add_staff
    from tests.staffweb import PASSWORD, log_in

    hub, partners = hub_and_partners
    case = student_case(client, partners)
    with unit_of_work(hub.session_factory) as session:
        add_staff(
            session,
            email="res@duisburg.de",
            role="caseworker",
            purposes=["residence"],
            password=PASSWORD,
        )
    staff = portal_client(hub)
    assert log_in(staff, "res@duisburg.de").status_code == 303
    person_page = staff.get(f"/staff/people/{case.person_id}")
    assert "Zugangscode erstellen" in person_page.text
    letter = staff.post(
        f"/staff/people/{case.person_id}/invites",
        data={"csrf_token": csrf_of(person_page.text), "language": "tr"},
    )
    assert letter.status_code == 200
    assert 'lang="tr"' in letter.text and "<svg" in letter.text
    code = re.search(r"<code>([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})</code>", letter.text)
    assert code, letter.text
    assert case.person_id not in letter.text

    browser = portal_client(hub)
    assert sign_in(browser, code.group(1), "2001-04-03").status_code == 303
    assert '<html lang="tr"' in browser.get(PORTAL + "/").text  # the letter's language

    person_page = staff.get(f"/staff/people/{case.person_id}")
    invite_id = re.search(r"<code>(inv_[0-9a-f]+)</code>", person_page.text)
    # A used code is no longer open; issue another and revoke it.
    assert invite_id is None
    staff.post(
        f"/staff/people/{case.person_id}/invites",
        data={"csrf_token": csrf_of(person_page.text)},
    )
    person_page = staff.get(f"/staff/people/{case.person_id}")
    invite_id = re.search(r"<code>(inv_[0-9a-f]+)</code>", person_page.text)
    assert invite_id, person_page.text
    revoked = staff.post(
        f"/staff/people/{case.person_id}/invites/{invite_id.group(1)}/revoke",
        data={"csrf_token": csrf_of(person_page.text)},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert invite_id.group(1) not in staff.get(f"/staff/people/{case.person_id}").text


def test_the_command_line_issues_lists_and_revokes_codes_and_writes_the_letter(
    hub_and_partners: tuple[Hub, Partners], client: TestClient, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from hub import cli

    hub, partners = hub_and_partners
    case = student_case(client, partners)
    env = {
        "HUB_DATABASE_URL": str(hub.settings.database_url),
        "HUB_DATA_DIR": str(hub.settings.data_dir),
        "HUB_CLIENT_VIEW_URL": "https://talent.duisburg.test",
    }
    run = CliRunner().invoke
    letter = tmp_path / "brief.html"
    issued = run(
        cli.main,
        ["clients", "invite", case.person_id, "--language", "ru", "--letter", str(letter)],
        env=env,
    )
    assert issued.exit_code == 0, issued.output
    code = re.search(r"code:\s+(\S+)", issued.output)
    assert code and "https://talent.duisburg.test/mein-verfahren/" in issued.output
    assert letter.stat().st_mode & 0o777 == 0o600
    text = letter.read_text()
    assert code.group(1) in text and 'lang="ru"' in text and "<svg" in text
    assert case.person_id not in text

    # An existing letter file is refused before a code exists: no code nobody can hand over.
    again = run(cli.main, ["clients", "invite", case.person_id, "--letter", str(letter)], env=env)
    assert again.exit_code != 0 and "exists" in again.output and "code:" not in again.output
    missing = run(
        cli.main,
        ["clients", "invite", "p_nobody", "--letter", str(tmp_path / "b.html")],
        env=env,
    )
    assert missing.exit_code != 0 and not (tmp_path / "b.html").exists()

    listed = run(cli.main, ["clients", "invites", case.person_id], env=env)
    [line] = listed.output.splitlines()
    assert line.endswith("open") and code.group(1) not in listed.output
    browser = portal_client(hub)
    assert sign_in(browser, code.group(1), "2001-04-03").status_code == 303
    invite_id = line.split()[0]
    revoked = run(cli.main, ["clients", "revoke", invite_id], env=env)
    assert revoked.exit_code == 0 and "1 session(s) ended" in revoked.output
    assert "Aufenthaltserlaubnis" not in browser.get(PORTAL + "/").text
    assert (
        run(cli.main, ["clients", "invites", case.person_id], env=env)
        .output.rstrip()
        .endswith("revoked")
    )
