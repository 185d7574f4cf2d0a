"""Policy stages around a call: keys and teams, limits, budgets, prices and spend.

Each stage is a small object with `async before(call)` (may refuse with an OpenAI-shaped
error before any upstream call) and `after(call, outcome)` (usage, cost, status, timings;
never blocks the response). The Relay runs them in order around every create, stream and
background job; a Relay without stages pays nothing for them.
"""

from .stage import Outcome, Stage

__all__ = ["Outcome", "Stage"]
