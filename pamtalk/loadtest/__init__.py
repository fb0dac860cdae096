"""The seed's load test (``performance_test.py --scenario --users --rps``) on Locust.

Run: ``pamtalk loadtest --scenario basic|peak|spike [--users N] [--rps R] [--duration S]
[--ramp S] [--target URL] [--report DIR]`` against a running server (``make loadtest`` brings
one up, runs the three scenarios and stops it: ``bench/loadtest.py``).

Modules, in the order a run uses them:

* ``scenarios``: the three scenarios, the request mix (70 % reads, 20 % writes, 10 % AI)
  and how the seed's users become Locust users (:class:`~pamtalk.loadtest.scenarios.Load`);
* ``prepare``: logs demo users in, makes their API keys and reads the seeded farms, crops,
  regions and prices from the API, for realistic payloads;
* ``locustfile``: the Locust side (``FastHttpUser`` + ``LoadTestShape``), run headless in a
  subprocess so that gevent's monkey-patching never reaches this process;
* ``report``: per-endpoint statistics, the JSON summary and the latency-over-time PNG;
* ``slo``: the seed's targets and ours, and the verdict;
* ``run``: all of the above for one scenario; its return value is the exit code.

Only ``locustfile`` imports Locust (and so gevent); nothing else in ``pamtalk`` imports it.
"""
