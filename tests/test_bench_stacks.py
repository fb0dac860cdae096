"""bench/stacks.py: py-spy's collapsed stacks (``--format raw --full-filenames``) summarised
by self time, by owning package and by our innermost frame."""

from __future__ import annotations

from bench import stacks

SITE = "/work/main/.venv/lib/python3.11/site-packages"
STDLIB = "/root/.pyenv/versions/3.11.7/lib/python3.11"
ENTRY = (
    "<module> (/work/main/.venv/bin/pamtalk:1);serve (/work/main/pamtalk/cli/serve.py:40);"
    f"Server.run ({SITE}/uvicorn/server.py:85);Runner.run ({STDLIB}/asyncio/runners.py:86)"
)
RAW = "\n".join(
    [
        # the loop's own C code: nothing under asyncio.run
        f"{ENTRY} 30",
        # a Redis command's socket write, under our cache
        f"{ENTRY};RedisCache._call (/work/main/pamtalk/cache.py:160);"
        f"AbstractConnection._send_packed_command ({SITE}/redis/asyncio/connection.py:1167);"
        f"StreamWriter.writelines ({STDLIB}/asyncio/streams.py:345) 50",
        # our own code as the leaf
        f"{ENTRY};page_for_viewer (/work/main/pamtalk/api/farm_view.py:42) 15",
        # uvicorn's response write, no frame of ours
        f"{ENTRY};RequestResponseCycle.send ({SITE}/uvicorn/protocols/http/httptools_impl.py:1) 5",
        "not a stack line",
    ]
)


def test_samples_are_summed_and_shared_by_leaf() -> None:
    profile = stacks.parse(RAW)
    assert profile.samples == 100
    leaf = stacks.Frame("StreamWriter.writelines", f"{STDLIB}/asyncio/streams.py")
    assert profile.leaves[leaf] == 50
    assert leaf.where == "StreamWriter.writelines (asyncio/streams.py)"
    assert profile.share(profile.leaves[leaf]) == 0.5


def test_a_standard_library_leaf_belongs_to_the_library_that_called_it() -> None:
    profile = stacks.parse(RAW)
    assert profile.packages == {
        "redis": 50,
        stacks.LOOP: 30,
        "pamtalk": 15,
        "uvicorn": 5,
    }


def test_our_innermost_frame_below_the_cli_takes_the_stack() -> None:
    profile = stacks.parse(RAW)
    assert profile.ours == {
        "RedisCache._call (pamtalk/cache.py)": 50,
        "page_for_viewer (pamtalk/api/farm_view.py)": 15,
        stacks.OUTSIDE: 35,
    }


def test_packages_of_paths() -> None:
    assert stacks.package_of(f"{SITE}/sqlalchemy/orm/session.py") == "sqlalchemy"
    assert stacks.package_of(f"{SITE}/six.py") == "six"
    assert stacks.package_of(f"{STDLIB}/json/encoder.py") == "json"
    assert stacks.package_of(f"{STDLIB}/contextlib.py") == "contextlib"
    assert stacks.package_of("/work/main/pamtalk/api/deps.py") == "pamtalk"
    assert stacks.package_of("/work/main/.venv/bin/pamtalk") == "(script)"
    assert stacks.short_path(f"{SITE}/sqlalchemy/orm/session.py") == "sqlalchemy/orm/session.py"
    assert stacks.short_path(f"{STDLIB}/json/encoder.py") == "json/encoder.py"
