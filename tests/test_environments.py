"""Power environments: the circuit each preset models, its budgets, and --power-env.

Tiers: pure Python (the closed-form budgets and recharge times against small Euler
integrations of the circuit written here, monotonicity, the option parsing); the CLI in
process (refusals, the listing, compile/run with --power-env on a tiny ONNX model); QEMU
(marked ``qemu``): a fixture that loses power exactly where a preset's budgets end.
"""

import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from tvm_intermittent import sim
from tvm_intermittent.board import load_board
from tvm_intermittent.cli import main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.errors import InputError
from tvm_intermittent.sim import environments
from tvm_intermittent.sim.harvesters import PowerTrace, ResistorSupply, TraceHarvester

import onnx_models

BOARDS = ("msp430fr5994", "qemu-an386", "apollo4-mram")


def run_cli(*argv):
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    status = main([str(a) for a in argv], env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


# ---- Independent integrations of the circuit -------------------------------------------


def euler_rc_charge(volts, ohms, farads, v_from, v_to, steps=200_000):
    """Seconds for C dV/dt = (Vs - V) / R to go from v_from to v_to (device off)."""
    guess = 5 * ohms * farads
    dt, v, t = guess / steps, v_from, 0.0
    while v < v_to:
        dv = (volts - v) / (ohms * farads) * dt
        if v + dv >= v_to:
            return t + dt * (v_to - v) / dv
        v, t = v + dv, t + dt
        assert t < guess * 10
    return t


def euler_discharge(volts, ohms, farads, v_on, v_off, load_w, horizon_s, steps=400_000):
    """Seconds for C dV/dt = (Vs - V) / R - P / V to fall from v_on to v_off, or None if it
    has not within ``horizon_s``; and the lowest voltage reached."""
    dt, v, t, lowest = horizon_s / steps, v_on, 0.0, v_on
    for _ in range(steps):
        dv = ((volts - v) / ohms - load_w / v) / farads * dt
        if v + dv <= v_off:
            return t + dt * (v - v_off) / -dv, v_off
        v, t = v + dv, t + dt
        lowest = min(lowest, v)
    return None, lowest


def step_drain(times, powers, full_j, load_w, start_s, dt=1e-4, horizon_s=100.0):
    """Seconds until a store of at most ``full_j`` (starting full) empties under ``load_w``,
    harvesting the repeating piecewise-constant trace, by fixed time steps (None: never)."""
    times, powers = np.asarray(times, float), np.asarray(powers, float)
    period = times[-1] + (times[-1] - times[-2])
    energy, t = full_j, start_s
    while t - start_s < horizon_s:
        row = np.searchsorted(times, t % period, side="right") - 1
        energy = min(full_j, energy + (powers[row] - load_w) * dt)
        t += dt
        if energy <= 0:
            return t - start_s
    return None


def step_recharge(times, powers, full_j, start_s, dt=1e-4):
    """Seconds until the trace has harvested ``full_j`` from ``start_s``, by fixed steps."""
    times, powers = np.asarray(times, float), np.asarray(powers, float)
    period = times[-1] + (times[-1] - times[-2])
    energy, t = 0.0, start_s
    while energy < full_j:
        energy += powers[np.searchsorted(times, t % period, side="right") - 1] * dt
        t += dt
    return t - start_s


# ---- Pure Python --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inas-1mF", "inas-10mF", "tinas-5mF"])
def test_rc_recharge_time_matches_the_circuit_ode(name):
    env = environments.get(name)
    supply = env.harvester
    want = euler_rc_charge(supply.volts, supply.ohms, env.capacitor_f, env.v_off, env.v_on)
    got = env.schedule("msp430fr5994").recharge_seconds(3)
    assert got == pytest.approx([want] * 3, rel=1e-3)
    # The textbook form, R C ln((Vs - v_off) / (Vs - v_on)).
    assert got[0] == pytest.approx(supply.ohms * env.capacitor_f * math.log(
        (supply.volts - env.v_off) / (supply.volts - env.v_on)), rel=1e-12)


@pytest.mark.parametrize("name, board", [("inas-1mF", "msp430fr5994"),
                                         ("tinas-5mF", "msp430fr5994"),
                                         ("tinas-5mF", "qemu-an386"),
                                         ("inas-5mF", "apollo4-mram")])
def test_boot_with_harvest_while_computing_matches_the_circuit_ode(name, board):
    env, the_board = environments.get(name), load_board(board)
    supply, schedule = env.harvester, env.schedule(board)
    active = schedule.boot_seconds(1)[0]
    want, _ = euler_discharge(supply.volts, supply.ohms, env.capacitor_f, env.v_on, env.v_off,
                              the_board.active_power_w, horizon_s=2 * active)
    assert active == pytest.approx(want, rel=1e-3)
    # The budget is what the load draws meanwhile, more than the charge alone pays for.
    charge_only = schedule.charge_energy_j / the_board.energy_per_instruction_j
    assert schedule.budget == int(the_board.active_power_w * active
                                  / the_board.energy_per_instruction_j)
    assert schedule.budget > charge_only


def test_a_supply_that_feeds_the_load_never_browns_out(caplog):
    # TiNAS's supply gives 2.2 to 3.1 mW between its thresholds; Apollo4 draws 0.69 mW.
    env, board = environments.get("tinas-5mF"), load_board("apollo4-mram")
    supply = env.harvester
    _, lowest = euler_discharge(supply.volts, supply.ohms, env.capacitor_f, env.v_on,
                                env.v_off, board.active_power_w, horizon_s=200.0)
    assert lowest > env.v_off
    with caplog.at_level("INFO", logger="tvm_intermittent.sim.power"):
        schedule = env.schedule(board)
        assert schedule.sustained and schedule.budgets(10) == [] and schedule.budget is None
    assert "no further power failures" in caplog.text
    assert schedule.recharge_seconds(4) == [] and not schedule.injects_failures
    # Tiles are then sized for the charge alone, and the compiler says so.
    assert env.power_cycle_budget(board) == int(
        schedule.charge_energy_j / board.energy_per_instruction_j)
    assert "never browns out" in env.sizing_note(board)


@pytest.mark.parametrize("board", BOARDS)
def test_budgets_grow_with_the_capacitance(board):
    presets = [environments.get(n).schedule(board).budget
               for n in ("inas-1mF", "inas-5mF", "inas-10mF")]
    assert presets[0] < presets[1] < presets[2]
    for name in ("inas-1mF", "office-solar", "rf-bursty", "board"):
        env = environments.get(name)
        budgets = [dataclasses.replace(env, capacitor_f=c).schedule(board).budget
                   for c in (1e-4, 3e-4, 1e-3, 3e-3)]
        if budgets[0] is None:  # the board's own harvest sustains this board
            assert set(budgets) == {None}
            continue
        assert all(a < b for a, b in zip(budgets, budgets[1:])), (name, budgets)


def test_trace_boots_follow_the_trace_and_the_capacitor_limit():
    # A load of 3.1 mW between a 1 mW and a 5 mW row: the store refills to its limit in the
    # bright rows (boot 3), and each boot starts where the last recharge ended.
    times, powers = [0.0, 0.5, 1.0, 1.5], [1e-3, 5e-3, 0.0, 2e-3]
    board = dataclasses.replace(load_board("msp430fr5994"), active_power_w=3.1e-3)
    env = environments.PowerEnvironment("t", "test", 1e-4, 3.0, 2.0,
                                        TraceHarvester(PowerTrace(times, powers), "t"))
    schedule = env.schedule(board)
    full = schedule.charge_energy_j
    starts, clock = [], 0.0
    for active, recharge in zip(schedule.boot_seconds(6), schedule.recharge_seconds(6)):
        starts.append(clock)
        assert active == pytest.approx(step_drain(times, powers, full, 3.1e-3, clock),
                                       abs=2e-4)
        assert recharge == pytest.approx(step_recharge(times, powers, full, clock + active),
                                         abs=2e-4)
        clock += active + recharge
    assert len(set(np.round(schedule.boot_seconds(6), 6))) > 1  # budgets vary with the trace
    assert schedule.guaranteed_budget <= min(schedule.budgets(200))
    # A trace whose bright row refills more than the dim rows drain never empties the store.
    bright = environments.PowerEnvironment(
        "b", "test", 1e-4, 3.0, 2.0,
        TraceHarvester(PowerTrace([0.0, 0.01], [0.0, 10e-3]), "b"))
    assert step_drain([0.0, 0.01], [0.0, 10e-3], full, 3e-3, 0.0, horizon_s=2.0) is None
    assert bright.schedule(board).budgets(5) == []


def test_rf_trace_boots_and_recharges_match_a_step_simulation():
    # The load exceeds every power of the trace: budgets come from the cumulative curve.
    env, board = environments.get("rf-bursty"), load_board("qemu-an386")
    schedule, trace = env.schedule(board), environments.rf_burst_trace()
    times = trace.starts[:-1]
    clock = 0.0
    for active, recharge in zip(schedule.boot_seconds(3), schedule.recharge_seconds(3)):
        assert active == pytest.approx(step_drain(times, trace.powers, schedule.charge_energy_j,
                                                  board.active_power_w, clock, dt=1e-5),
                                       abs=2e-5)
        assert recharge == pytest.approx(step_recharge(times, trace.powers,
                                                       schedule.charge_energy_j,
                                                       clock + active, dt=1e-3), abs=2e-3)
        clock += active + recharge


def test_generated_traces_have_their_documented_magnitudes():
    solar, rf = environments.office_solar_trace(), environments.rf_burst_trace()
    assert solar.period_s == 24 * 3600 and 100e-6 < solar.mean_w < 200e-6
    assert 300e-6 < solar.powers.max() < 400e-6 + 1e-9
    assert np.all(solar.powers[720:1320] == 0) and solar.powers[1321] > 0  # 20:00-06:00
    assert rf.period_s == pytest.approx(600.0) and 10e-6 < rf.mean_w < 40e-6
    assert 0.2 < np.mean(rf.powers > 0) < 0.5  # bursts
    again = environments.rf_burst_trace.__wrapped__()
    np.testing.assert_array_equal(again.powers, rf.powers)  # seeded: the same every time


def test_every_preset_is_documented_with_sources():
    text = (Path(__file__).resolve().parent.parent / "docs" / "power.md").read_text()
    for name in environments.names():
        env = environments.get(name)
        assert env.sources and env.description
        assert f"`{name}`" in text


def test_from_args_is_the_one_translation_of_the_options(tmp_path):
    board = load_board("msp430fr5994")
    default = environments.from_args(board)
    assert default.name == "board" and default.capacitor_f == board.capacitor_f
    legacy = sim.Capacitor(board)
    assert default.schedule(board).budgets(3) == legacy.budgets(3)
    assert default.schedule(board).recharge_seconds(3) == legacy.recharge_seconds(3)
    custom = environments.from_args(board, capacitor="1mF", harvest="2mW")
    assert (custom.name, custom.capacitor_f, custom.v_on) == ("custom", 1e-3, board.v_on)
    assert custom.harvester.watts == pytest.approx(2e-3)
    assert environments.from_args(board, power_env="INAS-5MF").name == "inas-5mF"
    with pytest.raises(InputError, match="--capacitor would contradict it"):
        environments.from_args(board, power_env="inas-1mF", capacitor="1mF")
    with pytest.raises(InputError, match="--harvest and --trace would contradict"):
        environments.from_args(board, power_env="inas-1mF", harvest="1mW", trace="t.csv")
    with pytest.raises(InputError, match="give one of them"):
        environments.from_args(board, harvest="1mW", trace="t.csv")
    with pytest.raises(InputError) as err:
        environments.from_args(board, power_env="inas-2mF")
    assert all(name in str(err.value) for name in environments.names())
    trace = tmp_path / "t.csv"
    trace.write_text("0 1e-4\n1 2e-4\n")
    assert environments.from_args(board, trace=trace).schedule(board).recharge_seconds(1)


def test_resistor_supply_below_turn_on_is_refused():
    env = environments.PowerEnvironment("low", "test", 1e-3, 2.99, 2.8, ResistorSupply(2.9, 1e3))
    with pytest.raises(InputError, match="never charges the capacitor"):
        env.schedule("msp430fr5994")


# ---- The command line ----------------------------------------------------------------------


def test_power_envs_lists_each_preset_with_its_budget():
    status, out, _ = run_cli("power-envs", "--board", "qemu-an386", "--json")
    assert status == 0
    listed = {e["name"]: e for e in json.loads(out)["power_envs"]}
    assert list(listed) == environments.names()
    for name, entry in listed.items():
        schedule = environments.get(name).schedule("qemu-an386")
        assert entry["budget"] == schedule.budget
        assert entry["recharge_seconds"] == pytest.approx(schedule.recharge_seconds(1)[0])
    status, out, _ = run_cli("power-envs", "--board", "apollo4-mram")
    assert status == 0 and "never fails" in out


@pytest.fixture(scope="module")
def softmax_file(tmp_path_factory):
    model, _ = onnx_models.softmax()
    path = tmp_path_factory.mktemp("envs") / "m.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("argv, message", [
    (["--power-env", "inas-2mF"], "known power environments: board, inas-1mF"),
    (["--power-env", "inas-1mF", "--capacitor", "1mF"], "--capacitor would contradict it"),
    (["--power-env", "rf-bursty", "--harvest", "1mW"], "--harvest would contradict it"),
    (["--power-env", "inas-1mF", "--power", "periodic", "--period", "9"],
     "with --power periodic it would be ignored"),
    (["--power-env", "inas-1mF", "--host"], "--power-env inas-1mF needs QEMU"),
])
def test_run_refuses_bad_power_env_options(softmax_file, argv, message):
    status, out, err = run_cli("run", softmax_file, *argv, "--json")
    assert status == 2 and message in err and "Traceback" not in err
    assert json.loads(out)["error"]["exit_status"] == 2


def test_compile_refuses_bad_power_env_and_writes_nothing(softmax_file, tmp_path):
    out_dir = tmp_path / "out"
    status, _, err = run_cli("compile", softmax_file, "-o", out_dir, "--power-env", "solar")
    assert status == 2 and all(n in err for n in environments.names())
    status, _, err = run_cli("compile", softmax_file, "-o", out_dir, "--power-env",
                             "inas-1mF", "--capacitor", "1mF")
    assert status == 2 and "--capacitor would contradict it" in err
    assert not out_dir.exists()


@pytest.mark.qemu
def test_compile_and_run_in_a_power_env(softmax_file, tmp_path):
    project = tmp_path / "p"
    status, out, err = run_cli("compile", softmax_file, "-o", project, "--board",
                               "msp430fr5994", "--power-env", "tinas-5mF", "--json")
    assert status == 0, err
    manifest = json.loads((project / "model.json").read_text())
    env = environments.get("tinas-5mF")
    assert manifest["power_env"] == "tinas-5mF" and manifest["capacitor_f"] == 5e-3
    assert manifest["power_cycle_budget"] == env.power_cycle_budget("msp430fr5994")
    status, out, err = run_cli("run", project, "--power-env", "inas-1mF", "--json")
    assert status == 0, err
    schedule = json.loads(out)["schedule"]
    want = environments.get("inas-1mF").schedule("msp430fr5994")
    assert schedule["environment"] == "inas-1mF" and schedule["budget"] == want.budget
    # --power capacitor alone: the environment the project was compiled for.
    status, out, err = run_cli("run", project, "--power", "capacitor", "--json")
    assert status == 0, err
    assert json.loads(out)["schedule"]["environment"] == "tinas-5mF"
    # --trace is a custom environment: the trace's harvest, the board's capacitor.
    trace = tmp_path / "t.csv"
    trace.write_text("time_s,power_w\n0,5e-4\n1,1e-4\n")
    status, out, err = run_cli("run", project, "--power", "capacitor", "--trace", trace,
                               "--capacitor", "100uF", "--json")
    assert status == 0, err
    schedule = json.loads(out)["schedule"]
    assert schedule["environment"] == "custom" and schedule["trace"] == str(trace)
    assert schedule["capacitor_f"] == 1e-4


# ---- QEMU -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_fake(tmp_path_factory):
    """The LCG fixture of test_power.py, 400,000 steps (about 14 M instructions)."""
    from test_power import _skip_without_qemu, export_fake  # pylint: disable=C0415

    _skip_without_qemu()
    project = export_fake(tmp_path_factory.mktemp("envs") / "fake",
                          prelude="#define FAKE_ITERATIONS 400000\n")
    return project


@pytest.mark.qemu
@pytest.mark.parametrize("name", ["inas-1mF", "rf-bursty"])
def test_fixture_fails_where_the_environment_budgets_say(long_fake, name):
    from test_power import (BOOT_BYTES, COMMIT_EVERY, reference, run,  # pylint: disable=C0415
                            seeds)

    iterations = 400_000
    continuous = run(long_fake)
    schedule = environments.get(name).schedule("qemu-an386")
    failed = run(long_fake, power=schedule)
    np.testing.assert_array_equal(failed.outputs[0], reference(seeds()[0], iterations)[0])
    budgets = schedule.budgets(failed.failures + 1)
    assert failed.failures >= 5
    # Every boot that failed spent exactly its budget (instructions plus the NVM access
    # costs; the failure comes before the instruction that would exceed it, and one
    # instruction makes at most 16 NVM accesses); the last boot finished within its own.
    load, store = schedule.nvm_load_cost, schedule.nvm_store_cost
    assert load > 0 and store > 0
    for count, loads, stores, budget in zip(failed.per_boot_instructions[:-1],
                                            failed.per_boot_nvm_loads,
                                            failed.per_boot_nvm_stores, budgets):
        charged = count + load * loads + store * stores
        assert charged >= budget > charged - 1 - 16 * max(load, store)
    assert failed.per_boot_instructions[-1] < budgets[failed.failures]
    if name == "rf-bursty":
        assert len(set(budgets)) > 1  # the trace gives each boot its own budget
    # How many failures the budgets allow, from the continuous run alone: at least as
    # many as without any lost work, at most as many as if every failure lost a whole
    # commit interval plus the startup and restore of a boot.
    total = (continuous.instructions_total + load * continuous.traffic.nvm_loads
             + store * continuous.traffic.nvm_stores)
    lost = (continuous.instructions_total / (iterations / COMMIT_EVERY)
            + continuous.range_first["fake_progress_restore"]
            + continuous.range_instructions["fake_progress_restore"]
            + store * BOOT_BYTES)  # at most one access per byte a boot stores
    ends = np.cumsum(schedule.budgets(failed.failures + 5))
    fewest = int(np.argmax(ends >= total))
    most = int(np.argmax(ends >= total + lost * np.arange(len(ends))))
    assert fewest <= failed.failures <= most and most - fewest <= 1
    assert sum(schedule.recharge_seconds(failed.failures)) > 0
