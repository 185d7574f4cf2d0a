import pytest

import llmrelay
from llmrelay.validate import check_create


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "bogus": 1}, "bogus"),
    ],
)
def test_bad_requests_name_the_field(params: dict, param: str) -> None:
    with pytest.raises(llmrelay.BadRequestError) as exc:
        check_create(params)
    assert exc.value.status_code == 400
    assert exc.value.body["param"] == param
    assert param in exc.value.message


def test_every_documented_field_is_accepted() -> None:
    check_create(
        {
            "model": "m", "input": [{"role": "user", "content": "hi"}], "instructions": "be brief",
            "tools": [{"type": "computer_use_preview", "display_width": 1024, "display_height": 768,
                       "environment": "browser"}],
            "tool_choice": "auto", "text": {"format": {"type": "text"}}, "reasoning": {"summary": "concise"},
            "include": ["reasoning.encrypted_content"], "truncation": "auto", "metadata": {"k": "v"},
            "parallel_tool_calls": True, "store": True, "background": False, "temperature": 0.5, "top_p": 1,
            "user": "u", "service_tier": "auto", "prompt_cache_key": "p", "safety_identifier": "s",
            "max_tool_calls": 3, "top_logprobs": 2, "conversation": "conv_1", "max_output_tokens": 100,
            "stream": False, "previous_response_id": "resp_1",
        }
    )  # fmt: skip
