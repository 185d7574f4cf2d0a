"""The `background` scenario: `POST /v1/responses` with `"background": true`, then
`GET /v1/responses/{id}` until the response is terminal, as an openai SDK user polls.

The load is wrk with a Lua script. wrk's `response()` hook sees each answer's body, and
`request()` may return any request; but one wrk thread's Lua state serves all its connections,
and `request()` is not told which connection asks. So answers that are not terminal push their
id on one FIFO and `request()` pops the next id to poll, or sends a new create when the FIFO is
empty: every id is polled until it ends, and about `c` sequences are in flight at any time.
The id and status are the first `"id"` / `"status"` in the body (string.match: wrk's Lua has no
JSON), which the probe checks is the Response's own for each system before it is measured.
"""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

from canned import TEXT, _dumps
from load import LUA_DONE, lua_string
from procs import get, post
from scenarios import Route

TERMINAL = ("completed", "failed", "cancelled", "incomplete")
MAX_POLLS = 50  # in a probe: nginx answers in_progress half the time, so 50 in a row never happen

# The Lua patterns below, in Python, for the probe.
_ID = re.compile(r'"id":\s*"([^"]+)"')
_STATUS = re.compile(r'"status":\s*"([A-Za-z_]+)"')

LUA_BACKGROUND = r"""
local pending, head, tail = {}, 1, 0
creates, polls, sequences, bad = 0, 0, 0, 0
local create_req

function init(args)
  -- after wrk.init has set the Host header
  create_req = wrk.format("POST", path, create_headers, create_body)
end

function request()
  if head <= tail then
    local id = pending[head]
    pending[head] = nil
    head = head + 1
    polls = polls + 1
    return wrk.format("GET", path .. "/" .. id, poll_headers)
  end
  creates = creates + 1
  return create_req
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local st = string.match(body, '"status":%s*"([%a_]+)"')
  if st == "queued" or st == "in_progress" then
    local id = string.match(body, '"id":%s*"([^"]+)"')
    if id then
      tail = tail + 1
      pending[tail] = id
    else
      bad = bad + 1
    end
  elseif st == "completed" then
    sequences = sequences + 1
  else
    bad = bad + 1  -- failed, cancelled, incomplete: the canned upstream never ends so
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

done = function(summary, latency, requests)
  report(summary, latency, requests)
  local c, p, s, b = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c, p, s, b = c + t:get("creates"), p + t:get("polls"), s + t:get("sequences"), b + t:get("bad")
  end
  io.write(string.format('WRKBG {"creates": %d, "polls": %d, "sequences": %d, "bad": %d}\n', c, p, s, b))
end
"""


def write_background_lua(path: Path, route: Route) -> None:
    """The script for one system's route: its create path, headers and body, then the hooks."""

    def table(headers: dict[str, str]) -> str:
        # "[ [" not "[[": the latter would open a Lua long string
        return "{" + ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()) + "}"

    lines = [
        f"path = {lua_string(route.path)}",
        f"create_headers = {table({'content-type': 'application/json', **route.headers})}",
        f"create_body = {lua_string(_dumps(route.body))}",
        f"poll_headers = {table(route.headers)}",
    ]
    path.write_text("\n".join(lines) + "\n" + LUA_DONE + LUA_BACKGROUND)


def probe_background(port: int, route: Route) -> str | None:
    """None when one create-then-poll sequence works through this system (and the script's
    string matching reads its bodies right), else why not."""
    try:
        status, data = post(port, route.path, route.headers, route.body)
        if status != 200:
            return f"background not supported: create answered HTTP {status}: {_text(data)}"
        why = _check(data)
        if why:
            return f"create: {why}"
        rid = json.loads(data)["id"]
        for n in range(1, MAX_POLLS + 1):
            status, data = get(port, f"{route.path}/{rid}", route.headers)
            if status != 200:
                return f"background not supported: GET {route.path}/{{id}} answered HTTP {status}: {_text(data)}"
            if why := _check(data):
                return f"poll {n}: {why}"
            state = json.loads(data)["status"]
            if state in TERMINAL:
                if state != "completed" or TEXT not in data.decode(errors="replace"):
                    return f"poll {n}: ended {state} without the upstream text: {_text(data)}"
                return None
        return f"still not terminal after {MAX_POLLS} polls"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"request failed: {exc!r}"


def _check(data: bytes) -> str | None:
    """The Response's own id and status are the first ones in the body, as the Lua reads them."""
    body = json.loads(data)
    text = data.decode(errors="replace")
    found_id, found_status = _ID.search(text), _STATUS.search(text)
    if not isinstance(body, dict) or not body.get("id"):
        return f"not a Response: {_text(data)}"
    if not found_id or found_id.group(1) != body["id"] or not found_status or found_status.group(1) != body["status"]:
        return f"the body's first id/status are not the Response's: {_text(data)}"
    if body.get("status") not in (*TERMINAL, "queued", "in_progress"):
        return f"status {body.get('status')!r}"
    return None


def _text(data: bytes) -> str:
    return data.decode(errors="replace")[:200]
