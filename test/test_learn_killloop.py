"""kill -9 of a real uploader process at random moments, 24 times, against a real server with
injected lost responses: afterwards nothing acknowledged is lost and nothing is duplicated.
(scripts/kill_loop.py runs the same loop for as many trials as you like.)"""

from __future__ import annotations

from edge_perception.learn.crashtest import run_kill_loop


def test_kill_minus_nine_loop(tmp_path):
    r = run_kill_loop(trials=24, workdir=tmp_path, seed=7)
    assert r["trials"] >= 20
    assert r["lost"] == [], r
    assert r["duplicated"] == [], r
    assert r["unexpected"] == [], r
    # the loop really did work: samples were acknowledged (about one per trial even on a
    # loaded machine), uploads were interrupted and lost responses re-sent
    assert r["acked"] >= r["trials"]
    assert r["at_server"] >= r["acked"]
    assert r["faults"]["drop_after"] >= 1 and r["server"]["duplicate"] >= 1
