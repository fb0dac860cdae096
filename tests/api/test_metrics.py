from __future__ import annotations

from prometheus_client import REGISTRY

from pamtalk.api.metrics import ActiveUsers


def test_active_users_counts_only_the_window() -> None:
    users = ActiveUsers(window=10)
    users.seen(1, now=0)
    users.seen(2, now=5)
    users.seen(1, now=9)  # user 1 first came earliest but is still active
    users.seen(3, now=16)  # user 2 (last seen at 5) has left the window
    assert REGISTRY.get_sample_value("active_users_gauge") == 2
    users.seen(3, now=30)
    assert REGISTRY.get_sample_value("active_users_gauge") == 1
