"""The computer-use mapping tables, both ways."""

import pytest

from llmrelay.providers import computer, gemini_computer

ANTHROPIC = [
    ({"action": "screenshot"}, {"type": "screenshot"}),
    ({"action": "left_click", "coordinate": [10, 20]}, {"type": "click", "button": "left", "x": 10, "y": 20}),
    ({"action": "right_click", "coordinate": [1, 2]}, {"type": "click", "button": "right", "x": 1, "y": 2}),
    ({"action": "middle_click", "coordinate": [1, 2]}, {"type": "click", "button": "wheel", "x": 1, "y": 2}),
    ({"action": "double_click", "coordinate": [5, 6]}, {"type": "double_click", "x": 5, "y": 6}),
    ({"action": "mouse_move", "coordinate": [7, 8]}, {"type": "move", "x": 7, "y": 8}),
    ({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [9, 9]},
     {"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 9, "y": 9}]}),
    ({"action": "scroll", "coordinate": [3, 4], "scroll_direction": "down", "scroll_amount": 3},
     {"type": "scroll", "x": 3, "y": 4, "scroll_x": 0, "scroll_y": 300}),
    ({"action": "scroll", "coordinate": [3, 4], "scroll_direction": "left", "scroll_amount": 2},
     {"type": "scroll", "x": 3, "y": 4, "scroll_x": -200, "scroll_y": 0}),
    ({"action": "type", "text": "hi"}, {"type": "type", "text": "hi"}),
    ({"action": "key", "text": "ctrl+c"}, {"type": "keypress", "keys": ["CTRL", "C"]}),
    ({"action": "wait", "duration": 1}, {"type": "wait"}),
]  # fmt: skip


@pytest.mark.parametrize(("anthropic", "openai"), ANTHROPIC)
def test_anthropic_actions_round_trip(anthropic: dict, openai: dict) -> None:
    assert computer.from_anthropic(anthropic) == openai
    assert computer.from_anthropic(computer.to_anthropic(openai)) == openai


GEMINI = [
    ("open_web_browser", {}, [{"type": "screenshot"}]),
    ("click_at", {"x": 500, "y": 500}, [{"type": "click", "button": "left", "x": 1000, "y": 500}]),
    ("hover_at", {"x": 250, "y": 100}, [{"type": "move", "x": 500, "y": 100}]),
    ("type_text_at", {"x": 100, "y": 100, "text": "hi", "press_enter": True},
     [{"type": "click", "button": "left", "x": 200, "y": 100}, {"type": "type", "text": "hi\n"}]),
    ("key_combination", {"keys": "Control+C"}, [{"type": "keypress", "keys": ["CTRL", "C"]}]),
    ("scroll_document", {"direction": "down"}, [{"type": "scroll", "x": 1000, "y": 500, "scroll_x": 0,
                                                 "scroll_y": 800}]),
    ("drag_and_drop", {"x": 0, "y": 0, "destination_x": 500, "destination_y": 500},
     [{"type": "drag", "path": [{"x": 0, "y": 0}, {"x": 1000, "y": 500}]}]),
    ("wait_5_seconds", {}, [{"type": "wait"}]),
    ("go_back", {}, [{"type": "keypress", "keys": ["ALT", "LEFT"]}]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "actions"), GEMINI)
def test_gemini_functions_scale_to_the_display_and_back(name: str, args: dict, actions: list) -> None:
    size = (2000, 1000)  # Gemini's 1000 grid is 2 px wide, 1 px high here
    items = gemini_computer.to_openai(name, args, "abc", size)
    assert [i["action"] for i in items] == actions
    parsed = gemini_computer.parse_call_id(items[-1]["call_id"])
    assert parsed is not None and parsed[:2] == (name, "abc")
    back = gemini_computer.to_gemini_args(name, [i["action"] for i in items], size)
    expected = {k: v for k, v in args.items() if name not in ("scroll_document",)}
    assert back == expected


def test_gemini_safety_decision_becomes_a_pending_safety_check() -> None:
    decision = {"decision": "require_confirmation", "explanation": "Confirm first."}
    (item,) = gemini_computer.to_openai("click_at", {"x": 1, "y": 1, "safety_decision": decision}, "id1", (1000, 1000))
    assert item["pending_safety_checks"] == [{"id": "gsc_id1", "code": "require_confirmation",
                                              "message": "Confirm first."}]  # fmt: skip
