"""Power-failure emulation on a hand-written intermittent fake model.

tests/fixtures/fake_intermittent runs 20000 steps of a linear congruential generator on
four seeds and commits its state to NVM every 250 steps, so it finishes under failures
and its output is known exactly (``reference`` below). Tiers: pure Python (schedules and
parsing); QEMU (marked ``qemu``): exactness and determinism of the injected failures,
boots, NVM byte counts, livelock stops and the report.
"""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tvm_intermittent import sim
from tvm_intermittent.board import load_board
from tvm_intermittent.codegen.project_files import copy_support_files
from tvm_intermittent.errors import InputError
from tvm_intermittent.sim import power

FIXTURE = Path(__file__).parent / "fixtures" / "fake_intermittent"
FUNCTIONS = ("fake_progress_commit", "fake_progress_restore")
ITERATIONS, COMMIT_EVERY = 20000, 250
#: NVM bytes the fixture stores: per commit (record, valid word, counter), per boot.
COMMIT_BYTES, BOOT_BYTES, PROBE_BYTES = 28, 4, 3 + 5 * 2 + 7 * 4 + 2 * 8


def _skip_without_qemu():
    for available, reason in (sim.toolchain_available(), sim.qemu_available()):
        if not available:
            pytest.skip(reason)


def export_fake(dst: Path, prelude: str = "") -> Path:
    """Copy the fixture to ``dst`` with ``prelude`` (knob macros) atop model.c."""
    shutil.copytree(FIXTURE, dst)
    model_c = dst / "model" / "model.c"
    model_c.write_text(prelude + model_c.read_text())
    copy_support_files(dst, "qemu-an386")
    return dst


def seeds():
    return [np.array([1, -2, 300, 2**31 - 1], dtype=np.int32)]


def reference(seed, iterations=ITERATIONS):
    state, k = seed.view(np.uint32).copy(), np.arange(4, dtype=np.uint32)
    for _ in range(iterations):
        state = state * np.uint32(1664525) + np.uint32(1013904223) + k
    return [state.view(np.int32)]


def run(project, **kwargs):
    return sim.run(project, seeds(), functions=FUNCTIONS, **kwargs)


def assert_outputs(result, expected):
    assert result.finished and result.stop_reason is None and result.exit_status == 0
    for got, want in zip(result.outputs, expected):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return export_fake(tmp_path_factory.mktemp("power") / "fake")


@pytest.fixture(scope="module")
def expected():
    return reference(seeds()[0])


@pytest.fixture(scope="module")
def continuous(project):
    _skip_without_qemu()
    return run(project)


# ---- Pure Python ----------------------------------------------------------------------


@pytest.mark.parametrize("text, farads", [("100uF", 1e-4), ("1mF", 1e-3), ("0.0001", 1e-4),
                                          ("47 nF", 4.7e-8), ("2.2e-5F", 2.2e-5)])
def test_parse_capacitance(text, farads):
    assert power.parse_capacitance(text) == pytest.approx(farads, rel=1e-12)


@pytest.mark.parametrize("parse, text, match", [
    (power.parse_capacitance, "100uW", "capacitance such as 100uF"),
    (power.parse_capacitance, "-1uF", "capacitance such as"),
    (power.parse_capacitance, "0", "greater than 0"),
    (power.parse_power, "2mF", "power such as 2mW"),
    (power.parse_power, "lots", "power such as"),
    (power.parse_window, "100", "window of failure points A:B"),
    (power.parse_window, "9:3", "0 <= A < B"),
    (power.parse_window, "a:b", "whole numbers"),
    (power.parse_schedule, "periodic", "expected none, periodic:N"),
    (power.parse_schedule, "periodic:0", "positive whole number"),
    (power.parse_schedule, "random:1:9:3", "min <= max"),
    (power.parse_schedule, "capacitor", "needs a board"),
    (power.parse_schedule, "fail_at:9,3", "must not decrease"),
    (power.parse_schedule, "fail_at:-1,3", "whole numbers >= 0"),
])
def test_bad_strings_raise_input_error(parse, text, match):
    with pytest.raises(InputError, match=match):
        parse(text)


def test_parse_schedule_kinds():
    assert power.parse_schedule("none") == sim.NoFailures()
    assert power.parse_schedule("periodic:5000") == sim.Periodic(5000)
    assert power.parse_schedule("random:7:100:200") == sim.Random(7, 100, 200)
    assert power.parse_schedule("fail_at:0") == sim.FailAt(0)
    assert power.parse_schedule("fail_at:7,7,30") == sim.FailAtEach((7, 7, 30))
    assert sim.FailAtEach((7, 9)).fail_points == (7, 9) and sim.FailAt(4).fail_points == (4,)
    assert list(power.parse_schedule("exhaustive:3:6").points()) == [3, 4, 5]
    cap = power.parse_schedule("capacitor:47uF:2mW", board="msp430fr5994")
    assert (cap.capacitor_f, cap.harvest_w) == (pytest.approx(4.7e-5), pytest.approx(2e-3))


def test_random_budgets_are_seeded_and_prefix_stable(caplog):
    with caplog.at_level("INFO", logger="tvm_intermittent.sim.power"):
        schedule = sim.Random(seed=11, min=100, max=110)
    assert "seed=11" in caplog.text
    budgets = schedule.budgets(50)
    assert budgets[:5] == schedule.budgets(5) == sim.Random(11, 100, 110).budgets(5)
    assert all(100 <= b <= 110 for b in budgets) and len(set(budgets)) > 1
    fresh = sim.Random(seed=None, min=1, max=10)
    assert isinstance(fresh.seed, int) and fresh.to_dict()["seed"] == fresh.seed


def test_capacitor_budget_nvm_costs_and_recharge():
    board = load_board("msp430fr5994")
    schedule = sim.Capacitor(board, capacitor_f=1e-4, harvest_w=2e-3)
    energy = 0.5 * 1e-4 * (board.v_on**2 - board.v_off**2)
    # The harvest goes on while the board computes: the charge drains at P - 2 mW, and the
    # boot draws P for that long.
    active = energy / (board.active_power_w - 2e-3)
    assert schedule.boot_seconds(1) == pytest.approx([active], rel=1e-12)
    assert schedule.budget == int(active * board.clock_hz / board.cycles_per_instruction)
    assert schedule.budget > int(energy / board.energy_per_instruction_j) * 1.5
    assert schedule.budgets(3) == [schedule.budget] * 3
    # One FRAM access at 16 MHz: a wait-state cycle of active power plus the array's energy,
    # in instructions of 1 cycle each (from the datasheet figures of the profile).
    cycle_j = 5.66e-3 / 16e6
    assert schedule.nvm_load_cost == pytest.approx((cycle_j + 3.5e-10) / cycle_j, rel=1e-3)
    assert schedule.nvm_store_cost == pytest.approx((cycle_j + 3.5e-10) / cycle_j, rel=1e-3)
    to_dict = schedule.to_dict()
    assert (to_dict["nvm_load_cost"], to_dict["nvm_store_cost"]) == (
        schedule.nvm_load_cost, schedule.nvm_store_cost)
    assert sim.Periodic(10).nvm_load_cost == sim.Periodic(10).nvm_store_cost == 0
    assert schedule.recharge_seconds(2) == pytest.approx([energy / 2e-3] * 2)
    assert not sim.NoFailures().injects_failures and sim.FailAt(5).injects_failures


def test_capacitor_that_the_harvest_sustains_never_fails(caplog):
    board = load_board("msp430fr5994")
    with caplog.at_level("INFO", logger="tvm_intermittent.sim.power"):
        schedule = sim.Capacitor(board, harvest_w=board.active_power_w)
        assert schedule.sustained and schedule.budgets(5) == [] and schedule.budget is None
    assert not schedule.injects_failures and schedule.recharge_seconds(3) == []
    assert "no further power failures" in caplog.text


def test_capacitor_recharges_along_a_repeating_trace(tmp_path):
    # 1 s at 1 mW, 1 s at nothing, 1 s at 2 mW, and the last row lasts 1 s too: 4 mJ in a
    # period of 4 s. A board drawing 10 mW empties a 1 mJ charge in about 0.1 s; each
    # recharge starts where that boot ended, so by hand (times in s, energies in mJ):
    # boot 1 from 0 drains 1 at 10 - 1 = 9 mW: 1/9 s; recharge from 1/9 at 1 mW: up to 1 s
    # gives 8/9, then nothing until 2 s, then 1/9 at 2 mW: 1/18 s; recharge 1 = 2 + 1/18 -
    # 1/9. Boot 2 from 2 + 1/18 drains at 8 mW: 1/8 s; recharge 2 from 2 + 1/18 + 1/8 at
    # 2 mW: 0.5 s.
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,power_w\n0,1e-3\n1,0\n2,2e-3  # bright\n3,1e-3\n")
    board = dataclasses.replace(load_board("msp430fr5994"), active_power_w=10e-3)
    capacitor_f = 1e-3 / (0.5 * (board.v_on**2 - board.v_off**2))
    schedule = sim.Capacitor(board, capacitor_f=capacitor_f, trace=str(trace))
    assert schedule.boot_seconds(2) == pytest.approx([1 / 9, 1 / 8])
    assert schedule.recharge_seconds(2) == pytest.approx([2 + 1 / 18 - 1 / 9, 0.5])
    per_second = board.clock_hz / board.cycles_per_instruction
    assert schedule.budgets(2) == [int(1 / 9 * per_second), int(1 / 8 * per_second)]
    trace.write_text("0 0\n1 0\n")
    with pytest.raises(InputError, match="harvests nothing"):
        sim.Capacitor(board, trace=str(trace))
    with pytest.raises(InputError, match="not a constant harvested power and a power trace"):
        sim.Capacitor(board, harvest_w=1e-3, trace=str(trace))


def test_schedules_that_cannot_run_are_refused(project):
    with pytest.raises(InputError, match="run_exhaustive"):
        run(project, power=sim.Exhaustive((0, 10)))
    with pytest.raises(InputError, match="need the QEMU run"):
        run(project, kind="host", power=sim.Periodic(1000))
    with pytest.raises(InputError, match="max_boots"):
        run(project, max_boots=0)


# ---- QEMU -----------------------------------------------------------------------------


@pytest.mark.qemu
def test_continuous_run_counts_nvm_bytes_and_functions(continuous, expected):
    assert_outputs(continuous, expected)
    assert (continuous.boots, continuous.failures) == (1, 0)
    assert continuous.per_boot_instructions == [continuous.instructions_total]
    commits = ITERATIONS // COMMIT_EVERY
    assert continuous.nvm_bytes_written == commits * COMMIT_BYTES + BOOT_BYTES
    assert continuous.per_boot_nvm_bytes == [continuous.nvm_bytes_written]
    first = continuous.range_first
    assert 0 < first["fake_progress_restore"] < first["fake_progress_commit"]
    assert continuous.range_instructions["fake_progress_commit"] % commits == 0


@pytest.mark.qemu
def test_nvm_bytes_are_exact_for_every_store_size(tmp_path):
    _skip_without_qemu()
    probe = export_fake(tmp_path / "probe", prelude="#define FAKE_NVM_PROBE\n")
    result = run(probe, power=sim.Periodic(200_000))
    commits = ITERATIONS // COMMIT_EVERY
    per_boot = PROBE_BYTES + BOOT_BYTES
    assert result.nvm_bytes_written == commits * COMMIT_BYTES + result.boots * per_boot
    assert sum(result.per_boot_nvm_bytes) == result.nvm_bytes_written


@pytest.mark.qemu
def test_periodic_failures_are_exact_and_deterministic(project, continuous, expected):
    first = run(project, power=sim.Periodic(100_000))
    assert_outputs(first, expected)
    assert first.boots == first.failures + 1 > 5
    assert first.per_boot_instructions[:-1] == [100_000] * first.failures
    assert 0 < first.per_boot_instructions[-1] <= 100_000
    assert sum(first.per_boot_instructions) == first.instructions_total
    assert first.instructions_scrub == first.boots * continuous.instructions_scrub
    second = run(project, power=sim.Periodic(100_000))
    for field in ("per_boot_instructions", "per_boot_nvm_bytes", "marks", "range_instructions",
                  "instructions_scrub", "nvm_bytes_written"):
        assert getattr(second, field) == getattr(first, field), field
    assert run(project, power=sim.Periodic(10**7)).boots == 1


@pytest.mark.qemu
def test_random_failures_follow_the_seeded_budgets(project, expected):
    schedule = sim.Random(seed=3, min=20_000, max=60_000)
    result = run(project, power=schedule)
    assert_outputs(result, expected)
    assert result.per_boot_instructions[:-1] == schedule.budgets(result.boots)[:-1]
    assert result.per_boot_instructions[-1] <= schedule.budgets(result.boots)[-1]
    assert result.schedule == {"kind": "random", "seed": 3, "min": 20_000, "max": 60_000}
    again = run(project, power=sim.Random(seed=3, min=20_000, max=60_000))
    assert again.per_boot_instructions == result.per_boot_instructions
    other = run(project, power=sim.Random(seed=4, min=20_000, max=60_000))
    assert other.per_boot_instructions != result.per_boot_instructions


@pytest.mark.qemu
def test_fail_at_fails_once_after_exactly_k_instructions(project, continuous, expected):
    # Before the first commit, a failure at k wastes exactly k instructions.
    k = continuous.range_first["fake_progress_commit"] - 3
    result = run(project, power=sim.FailAt(k))
    assert_outputs(result, expected)
    assert (result.boots, result.failures) == (2, 1)
    assert result.per_boot_instructions == [k, continuous.instructions_total]


@pytest.mark.qemu
def test_failures_are_exact_to_the_instruction(tmp_path):
    """The firmware itself sees it: after a failure at K, its NVM counter holds the number
    of its stores among the first K instructions, for K at every position of the loop."""
    _skip_without_qemu()
    project = export_fake(tmp_path / "counter", prelude="#define FAKE_COUNTER_PROBE\n")
    mark = run(project, power=sim.FailAt(10_000)).marks[1]  # [0] is the harness's mark

    def stores_before(k):  # the stores are instructions mark + 3 + 3 j
        return max(0, (k - mark - 3 + 2) // 3)

    for k in [*range(mark - 1, mark + 11), mark + 30_001, mark + 30_002]:
        result = run(project, power=sim.FailAt(k))
        assert result.per_boot_instructions[0] == k and result.failures == 1
        assert result.outputs[0][0] == stores_before(k), k
    assert stores_before(mark + 30_002) == 10_000


@pytest.mark.qemu
def test_stores_are_recorded_at_the_exact_instruction(tmp_path):
    """The counter probe stores into NVM at instructions mark + 3 + 3 j (see the fixture);
    the plugin must record exactly those counts, and no store the failure prevented."""
    _skip_without_qemu()
    project = export_fake(tmp_path / "counter", prelude="#define FAKE_COUNTER_PROBE\n")
    mark = run(project, power=sim.FailAt(10_000)).marks[1]
    result = run(project, power=sim.FailAt(mark + 30), stores=("intm_model_run",))
    stores = [count for name, count in result.stores if name == "intm_model_run"]
    assert stores[0] < mark  # fake_counter_started = 1, before the loop
    assert stores[1:] == [mark + 3 + 3 * j for j in range(9)]  # the 10th would be mark + 30
    assert result.failure_points == [mark + 30] and result.outputs[0][0] == 9


@pytest.mark.qemu
def test_events_and_commit_stores_follow_the_firmware(project, expected):
    result = run(project, events=FUNCTIONS, stores=FUNCTIONS)
    assert_outputs(result, expected)
    commits = ITERATIONS // COMMIT_EVERY
    assert [name for name, _ in result.events] == [FUNCTIONS[1]] + [FUNCTIONS[0]] * commits
    spans = result.store_spans(FUNCTIONS[0])
    assert len(spans) == commits
    for (entry, first, last), (next_entry, _, _) in zip(spans, spans[1:] + [(10**12,) * 3]):
        # The record (an STM or word stores), the valid word, the counter: > 1 store.
        assert entry < first < last < next_entry
    restore = result.store_spans(FUNCTIONS[1])
    assert len(restore) == 1 and restore[0][1] == restore[0][2]  # one store: the counter
    # A failure before a commit's first store redoes its batch; the stores of the redone
    # commit are recorded again, so the run has one more commit than the continuous one.
    entry, first, last = spans[3]
    failed = run(project, power=sim.FailAt(first), events=FUNCTIONS, stores=FUNCTIONS)
    assert_outputs(failed, expected)
    assert len(failed.store_spans(FUNCTIONS[0])) == commits + 1


@pytest.mark.qemu
def test_two_failures_fall_exactly_where_scheduled(project, continuous, expected):
    """A second failure K2 after K1 ends the recovery boot after exactly K2 - K1
    instructions; K2 == K1 fails that boot before its first instruction."""
    k1 = continuous.range_first["fake_progress_commit"] + 5
    for k2 in (k1, k1 + 1, k1 + 40):
        result = run(project, power=sim.FailAtEach((k1, k2)))
        assert_outputs(result, expected)
        assert result.failure_points == [k1, k2] and result.failures == 2
        assert result.per_boot_instructions[:2] == [k1, k2 - k1]
    results = sim.run_exhaustive(project, seeds(), [k1, k1 + 7], then=(3,), functions=FUNCTIONS)
    assert [r.failure_points for r in results] == [[k1, k1 + 3], [k1 + 7, k1 + 10]]


@pytest.mark.qemu
def test_exhaustive_failures_around_a_commit_all_give_the_right_outputs(project, continuous,
                                                                       expected):
    # Every instruction of the first commit (and a few around it) as the failure point.
    start = continuous.range_first["fake_progress_commit"] - 4
    commit_length = continuous.range_instructions["fake_progress_commit"] // (
        ITERATIONS // COMMIT_EVERY)
    results = sim.run_exhaustive(project, seeds(), f"{start}:{start + commit_length + 8}",
                                 functions=FUNCTIONS)
    assert len(results) == commit_length + 8
    for k, result in enumerate(results, start=start):
        assert_outputs(result, expected)
        assert result.per_boot_instructions[0] == k and result.failures == 1


@pytest.mark.qemu
def test_capacitor_charges_nvm_accesses_against_the_budget(project, expected):
    board = load_board("msp430fr5994")
    schedule = sim.Capacitor(board, capacitor_f=8e-6)
    result = run(project, power=schedule)
    assert_outputs(result, expected)
    load, store, budget = schedule.nvm_load_cost, schedule.nvm_store_cost, schedule.budget
    boots = zip(result.per_boot_instructions[:-1], result.per_boot_nvm_loads,
                result.per_boot_nvm_stores)
    assert result.failures > 2
    for count, loads, stores in boots:
        # The failure comes before the first instruction at which the work plus the NVM
        # cost reaches the budget; one instruction makes at most 16 accesses (an LDM/STM).
        cost = load * loads + store * stores
        assert loads + stores > 0 and count < budget
        assert count + cost >= budget > count - 1 + cost - 16 * max(load, store)


@dataclasses.dataclass(frozen=True)
class _Charged(sim.Periodic):
    """Periodic budgets with each NVM access charged, as a capacitor charges them."""

    nvm_load_cost: float = 0.0
    nvm_store_cost: float = 0.0


@pytest.mark.qemu
def test_nvm_access_costs_bring_the_failure_forward_by_exactly_their_charge(project, expected):
    """With the cost of NVM accesses charged, the first boot fails at the first instruction
    at which its instructions plus that cost reach the budget: earlier than the uncharged
    failure (exactly at the budget) by the charge itself. The accesses a boot made are
    checked against uncharged runs cut at the same instruction."""
    budget, load, store = 100_000, 7.0, 40.0
    free = run(project, power=sim.Periodic(budget))
    charged = run(project, power=_Charged(budget, nvm_load_cost=load, nvm_store_cost=store))
    assert_outputs(charged, expected)
    assert free.failure_points[0] == free.per_boot_instructions[0] == budget
    point = charged.failure_points[0]
    assert point == charged.per_boot_instructions[0] < budget
    loads, stores = charged.per_boot_nvm_loads[0], charged.per_boot_nvm_stores[0]
    assert stores > 0
    # The same first `point` instructions, uncharged, make the same accesses ...
    same = run(project, power=sim.FailAt(point))
    assert (same.per_boot_nvm_loads[0], same.per_boot_nvm_stores[0]) == (loads, stores)
    # ... and one instruction fewer made accesses that had not spent the charge yet.
    before = run(project, power=sim.FailAt(point - 1))
    spent_before = load * before.per_boot_nvm_loads[0] + store * before.per_boot_nvm_stores[0]
    charge = load * loads + store * stores
    assert point + charge >= budget > point - 1 + spent_before
    # The last instruction before the failure accessed no NVM: the failure comes exactly the
    # charge early.
    assert spent_before == charge and budget - point == charge


@pytest.mark.qemu
def test_max_boots_stops_a_firmware_that_never_commits(tmp_path):
    _skip_without_qemu()
    project = export_fake(tmp_path / "never", prelude="#define FAKE_COMMIT_EVERY 0\n")
    result = run(project, power=sim.Periodic(50_000), max_boots=5, timeout=30)
    assert not result.finished and result.stop_reason == "max_boots"
    assert result.outputs is None and result.exit_status is None
    assert (result.boots, result.failures) == (5, 5)
    assert result.per_boot_instructions == [50_000] * 5


@pytest.mark.qemu
def test_no_progress_status_is_a_result_not_an_error(tmp_path):
    _skip_without_qemu()
    project = export_fake(tmp_path / "futile", prelude="#define FAKE_COMMIT_EVERY 0\n"
                                                       "#define FAKE_NO_PROGRESS_BOOTS 3\n")
    result = run(project, power=sim.Periodic(50_000))
    assert not result.finished and result.stop_reason == "no_progress"
    assert result.exit_status == sim.NO_PROGRESS_STATUS and result.outputs is None
    assert (result.boots, result.failures) == (4, 3)


@pytest.mark.qemu
def test_report_accounts_for_every_instruction(project, continuous, expected):
    schedule = sim.Capacitor("msp430fr5994", capacitor_f=8e-6, harvest_w=1e-3)
    failed = run(project, power=schedule)
    report = sim.IntermittentReport.from_runs(
        failed, continuous, board="msp430fr5994", schedule=schedule, reference=expected,
        commit=FUNCTIONS[0], restore=FUNCTIONS[1])
    assert report.outputs_match and report.finished and report.boots == failed.boots
    assert (report.instructions_continuous + report.instructions_boot
            + report.instructions_reexecuted) == report.instructions_total
    startup = continuous.range_first["fake_progress_restore"]
    restores = failed.range_instructions["fake_progress_restore"]
    assert report.instructions_boot == (failed.failures * startup + restores
                                        - continuous.range_instructions["fake_progress_restore"])
    assert report.imo == pytest.approx(
        (failed.instructions_total - continuous.instructions_total) / failed.instructions_total)
    board = load_board("msp430fr5994")
    # Time and energy from the datasheet figures of the profile, written out here: 16 MHz,
    # one cycle per instruction, one FRAM wait state per access, 5.66 mW, 0.35 nJ/access.
    traffic = failed.traffic
    accesses = traffic.nvm_loads + traffic.nvm_stores
    assert traffic.instructions == failed.instructions_total and accesses > 0
    assert (report.nvm_loads, report.nvm_stores, report.nvm_load_bytes) == (
        traffic.nvm_loads, traffic.nvm_stores, traffic.nvm_load_bytes)
    assert report.nvm_bytes_written == traffic.nvm_store_bytes == failed.nvm_bytes_written
    active = (failed.instructions_total + accesses) / 16e6
    assert report.active_seconds == pytest.approx(active, rel=1e-9)
    assert report.energy_j == pytest.approx(5.66e-3 * active + 3.5e-10 * accesses, rel=1e-3)
    # The fixture's model.json has no arena size: the baseline keeps its arena in NVM and
    # pays for its accesses, measured by its own run (here: the same firmware continuous).
    assert report.baseline_arena == "nvm"
    per_instruction = 5.66e-3 / 16e6
    e_total = report.energy_j / per_instruction
    same = continuous.traffic
    e_base = (same.instructions + (same.nvm_loads + same.nvm_stores)
              * (1 + 3.5e-10 / per_instruction))
    assert report.equivalents_total == pytest.approx(e_total, rel=1e-3)
    assert report.equivalents_uninstrumented == pytest.approx(e_base, rel=1e-3)
    assert report.imo_energy == pytest.approx((e_total - e_base) / e_total, rel=1e-3)
    assert report.imo_energy > report.imo > 0  # the re-executed tiles re-store their bytes
    assert report.recharge_seconds == pytest.approx(
        failed.failures * schedule.charge_energy_j / 1e-3)
    assert json.loads(json.dumps(report.to_dict()))["boots"] == failed.boots
    text = report.render()
    assert "IMO" in text and "match the reference" in str(report)
    written = next(line for line in text.splitlines() if "NVM written" in line)
    assert written.endswith(f"{int(traffic.nvm_stores):,} accesses, "
                            f"{failed.nvm_bytes_written:,} bytes") and "arena in NVM" in text
    assert json.loads(json.dumps(report.to_dict()))["baseline_arena"] == "nvm"
    wrong = [expected[0] + 1]
    assert not sim.IntermittentReport.from_runs(failed, continuous, board=board,
                                                reference=wrong).outputs_match


@pytest.mark.qemu
def test_modes_build_their_own_firmware(project, continuous, expected):
    result = run(project, mode="restart")
    assert_outputs(result, expected)
    assert result.mode == "restart"
    assert (project / "build" / "qemu-restart" / "firmware.elf").is_file()
    with pytest.raises(ValueError, match="mode must be one of"):
        run(project, mode="fastest")


@pytest.mark.qemu
def test_timeline_drains_each_charge_by_the_measured_work(project, expected):
    """On the plot's time line, a boot that fails has spent its whole charge (to within the
    last instruction and its accesses), the energy of its instructions and NVM accesses
    written out here from the profile's figures; the last boot has charge left."""
    from tvm_intermittent.sim.timeline import power_timeline

    board = load_board("msp430fr5994")
    schedule = sim.Capacitor(board, capacitor_f=8e-6, harvest_w=1e-3)
    result = run(project, power=schedule)
    assert_outputs(result, expected)
    timeline = power_timeline(result, schedule, board)
    full = schedule.charge_energy_j
    cycle_j, access_j = 5.66e-3 / 16e6, 3.5e-10  # 16 MHz, CPI 1, 1 wait state per access
    boots = zip(result.per_boot_instructions, result.per_boot_nvm_loads,
                result.per_boot_nvm_stores, schedule.budgets(result.boots))
    for i, (count, loads, stores, budget) in enumerate(boots):
        # The harvest while computing stretches a charge to the boot's budget.
        used = ((count + loads + stores) * cycle_j + (loads + stores) * access_j) * full / (
            budget * cycle_j)
        left = timeline.energy_j[3 * i + 1]
        assert left == pytest.approx(max(full - used, 0.0), abs=1e-12)
        active = timeline.times[3 * i + 1] - timeline.times[3 * i]
        assert active == pytest.approx((count + loads + stores) / 16e6, rel=1e-9)
        if i < result.failures:
            assert full - used <= 17 * (cycle_j + access_j)  # the charge is spent
            assert budget * cycle_j > 1.05 * full  # and the harvest did add to it
    assert result.failures > 2 and timeline.energy_j[-1] > 0  # the last boot finished
    assert len(timeline.commit_times) == len(result.commits)
