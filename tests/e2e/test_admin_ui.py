"""The admin page at /ui in a real headless Chromium (Debian's `chromium`, driven by playwright):
sign in, create a key, use it through the openai SDK, see its spend and the request, open the
stored response, cancel a background job, block the key and see the next call refused.
Screenshots of every page go to tests/artifacts/ui/."""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests.e2e.gateway_helpers import MASTER, call, ok
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import REPO_ROOT, FakeServer

CHROMIUM = os.environ.get("LLMRELAY_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "ui"
PRICE = 0.000002  # USD a token: any call costs something
TIMEOUT_MS = 15000  # generous: a loaded machine is slow, a working page never waits this long


def expect(locator):  # type: ignore[no-untyped-def]
    """playwright's auto-waiting assertions (imported late: the module loads without playwright)."""
    from playwright.sync_api import expect as expect_

    expect_.set_options(timeout=TIMEOUT_MS)
    return expect_(locator)


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install 'llmrelay[test]')"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def page() -> Iterator:  # type: ignore[type-arg]
    missing = _browser_missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"the admin page's browser test must run under CI: {missing}")
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 820})
        tab.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))

        def console(message) -> None:  # type: ignore[no-untyped-def]
            if message.type == "error" and "status of 40" not in message.text:  # refused keys are expected
                errors.append(message.text)

        tab.on("console", console)
        yield tab
        browser.close()
        assert not errors, errors  # no script errors, no CSP violations


@pytest.fixture(scope="module")
def proxy(chat_fake: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    prices = {"input_cost_per_token": PRICE, "output_cost_per_token": PRICE}
    slow = {"model": "groq/llama-3.3-70b", "api_key": "k", "api_base": chat_fake.url, **prices}
    config = {"model_list": [{"model_name": "demo", "litellm_params": {"model": "mock/demo", **prices}},
                             {"model_name": "slow", "litellm_params": slow}],
              "general_settings": {"master_key": MASTER}}  # fmt: skip
    tmp = tmp_path_factory.mktemp("ui")
    with start_proxy("--config", str(write_config(config, tmp)), store=str(tmp / "ui.db")) as p:
        yield p


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#page[aria-busy=false]")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go(page, proxy: ProxyProcess, where: str) -> None:  # type: ignore[no-untyped-def]
    """A fresh load of a page (a new query string: the same URL again would not reload it)."""
    go.loads += 1  # type: ignore[attr-defined]
    page.goto(f"{proxy.root}/ui?load={go.loads}#/{where}")  # type: ignore[attr-defined]
    page.wait_for_selector("#page[aria-busy=false]")


go.loads = 0  # type: ignore[attr-defined]


def test_admin_page_end_to_end(page, proxy: ProxyProcess, chat_fake: FakeServer) -> None:  # type: ignore[no-untyped-def]
    chat_fake.reset()
    # the page loads without a key; a wrong key is refused with a message
    page.goto(proxy.root + "/ui")
    page.fill("#login-key", "sk-not-the-master")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_contain_text("not accepted")
    page.screenshot(path=str(ARTIFACTS / "login-error.png"))
    assert not page.is_visible("#app")

    page.fill("#login-key", MASTER)
    page.click("#login-form button")
    page.wait_for_selector("#app:not([hidden])")
    page.click("text=Check health")
    page.wait_for_selector("[data-health] .badge")
    assert page.locator("[data-health] .badge.ok").count() == 2
    shot(page, "models")

    go(page, proxy, "teams")
    page.click("text=New team")
    page.fill("input[name=team_alias]", "research")
    page.fill("form input[name=max_budget]", "50")
    page.click("text=Create team")
    page.wait_for_selector("td:has-text('research')")
    shot(page, "teams")

    # a key with a budget, made on the page, shown once
    go(page, proxy, "keys")
    page.click("text=New key")
    page.fill("input[name=key_alias]", "ui-test")
    page.select_option("select[name=team_id]", label="research")
    page.fill("input[name=max_budget]", "5")
    page.select_option("select[name=budget_duration]", "30d")
    page.fill("input[name=rpm_limit]", "100")
    page.click("text=Create key")
    expect(page.locator("#new-key")).to_have_value(re.compile(r"^sk-llmrelay-"))
    key = page.input_value("#new-key")
    row = page.locator("tr[data-key=ui-test]")
    expect(row).to_contain_text("$0.00 of $5.00")
    expect(row).to_contain_text("research")
    shot(page, "key-created")

    client = OpenAI(base_url=proxy.url, api_key=key, max_retries=0)
    said = "Hello from the admin page test <b>not markup</b>"
    raw = client.responses.with_raw_response.create(model="demo", input=said)
    made, cost = raw.parse(), float(raw.headers["x-llmrelay-response-cost"])
    assert made.status == "completed" and cost > 0

    go(page, proxy, "keys")
    spend = page.inner_text("tr[data-key=ui-test] td.spend")
    assert spend.startswith(f"${round(cost, 6):.6f}".rstrip("0") + " of $5.00"), (spend, cost)
    shot(page, "keys")

    go(page, proxy, "requests")
    request = page.locator(f"tr[data-request={made.id}]")
    assert "completed" in request.inner_text().lower() and "ui-test" in request.inner_text()
    assert " ms" in request.inner_text()
    shot(page, "requests")

    go(page, proxy, "spend")
    heights = [
        float(h or 0)
        for h in page.locator("svg.chart rect.day").evaluate_all("rs => rs.map(r => r.getAttribute('height'))")
    ]
    assert len(heights) == 30 and sum(h > 0 for h in heights) == 1  # one day with spend
    assert "ui-test" in page.inner_text("#page")
    shot(page, "spend")

    # the stored response, opened from the request list: input and output, text as text
    go(page, proxy, "requests")
    page.click(f"tr[data-request={made.id}] a")
    page.wait_for_selector("#input-items .text")
    assert page.inner_text("#input-items .text") == said
    assert page.locator("#input-items b").count() == 0
    assert made.output_text in page.inner_text("#output-items")
    shot(page, "response")

    # a background job that hangs upstream, cancelled from the page
    chat_fake.enqueue({"hang": True})
    job = client.responses.create(model="slow", input="a long job", background=True)
    assert job.status in ("queued", "in_progress")
    go(page, proxy, "jobs")
    assert "ui-test" in page.inner_text(f"tr[data-job={job.id}]")
    shot(page, "jobs")
    page.click(f"tr[data-job={job.id}] button:has-text('Cancel')")
    page.wait_for_selector(f"tr[data-job={job.id}]", state="detached")
    expect(page.locator("#flash")).to_contain_text("cancelled")
    assert client.responses.retrieve(job.id).status == "cancelled"

    # blocked on the page: the SDK's next call is refused
    go(page, proxy, "keys")
    page.click("tr[data-key=ui-test] button:has-text('Block')")
    page.wait_for_selector("tr[data-key=ui-test] .badge.bad")
    shot(page, "keys-blocked")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.responses.create(model="demo", input="again")
    assert refused.value.code == "key_blocked"

    # deleted with a second click: gone from the list, and refused as unknown
    page.click("tr[data-key=ui-test] button:has-text('Delete')")
    page.click("tr[data-key=ui-test] button:has-text('Really delete?')")
    page.wait_for_selector("tr[data-key=ui-test]", state="detached")
    with pytest.raises(openai.AuthenticationError):
        client.responses.create(model="demo", input="again")


def test_a_proxy_admin_key_signs_in_and_other_keys_do_not(page, proxy: ProxyProcess) -> None:  # type: ignore[no-untyped-def]
    ok(proxy, "/user/new", {"user_id": "ops-admin", "user_role": "proxy_admin"})
    admin_key = ok(proxy, "/key/generate", {"user_id": "ops-admin", "key_alias": "ops"})["key"]
    plain_key = ok(proxy, "/key/generate", {"key_alias": "plain"})["key"]
    page.goto(proxy.root + "/ui")
    page.click("#sign-out")
    page.fill("#login-key", plain_key)
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_contain_text("may not manage the proxy")
    page.fill("#login-key", admin_key)
    page.click("#login-form button")
    page.wait_for_selector("#app:not([hidden])")
    go(page, proxy, "keys")
    assert page.locator("tr[data-key=plain]").count() == 1


def test_admin_routes_read_any_owner_and_refuse_others(proxy: ProxyProcess) -> None:
    key = ok(proxy, "/key/generate", {"key_alias": "owner-check"})["key"]
    made = OpenAI(base_url=proxy.url, api_key=key, max_retries=0).responses.create(model="demo", input="mine")
    # the Responses API is scoped to the key that made it; the admin route reads it for the master
    assert call(proxy, f"/v1/responses/{made.id}")[0] == 404
    info = ok(proxy, f"/response/info?response_id={made.id}")
    assert info["response"]["id"] == made.id and info["input_items"][0]["content"][0]["text"] == "mine"
    assert info["owner"] == ok(proxy, "/key/info", auth=key)["info"]["key_id"]

    status, body, _ = call(proxy, "/response/info")
    assert status == 400 and body["error"]["param"] == "response_id"
    assert call(proxy, "/response/info?response_id=resp_nothing")[0] == 404
    status, body, _ = call(proxy, "/response/cancel", {"response_id": made.id})
    assert status == 400 and "background" in body["error"]["message"]  # not a job
    assert call(proxy, "/response/jobs?limit=0")[0] == 400
    for path, body in (("/response/jobs", None), ("/response/info?response_id=" + made.id, None),
                       ("/response/cancel", {"response_id": made.id})):  # fmt: skip
        assert call(proxy, path, body, auth=key)[0] == 403  # a key that is not an admin's

    # the page's files: served without a key, only the page's own scripts may run
    with urllib.request.urlopen(proxy.root + "/ui") as r:
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
    for script in ("dom.js", "app.js"):
        with urllib.request.urlopen(f"{proxy.root}/ui/{script}") as r:
            assert r.headers["content-type"].startswith("text/javascript") and b"innerHTML" not in r.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(proxy.root + "/ui/secrets.txt")
    assert missing.value.code == 404
