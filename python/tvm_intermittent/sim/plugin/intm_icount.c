/*
 * intm_icount.c - QEMU TCG plugin: exact guest instruction counts and power failures.
 *
 * QEMU has no cycle counter for M-profile cores, so the simulator measures work in executed
 * instructions, and it emulates a batteryless device's power failures as system resets at
 * exact instruction counts. Every executed guest instruction runs one callback of this
 * plugin *before* the instruction itself, which
 *   - starts a new boot when it is the instruction at `boot` (the reset handler): a boot
 *     begins when its first instruction is about to run, so a failure right there makes a
 *     boot of 0 instructions;
 *   - records the running count when it is the instruction at `mark` (intm_mark());
 *   - records (id, count) when it is the first instruction of an `event` function (the
 *     commit, restore and phase functions, each tile batch's task function);
 *   - counts it for each `range` that contains it (commit and restore code);
 *   - injects a power failure when the schedule says so: it requests a system reset and
 *     abandons the current translation block at once, so that neither this instruction nor
 *     the rest of its block executes. Failures are therefore exact to the instruction;
 *   - counts it.
 * Instructions inside `skip` (the boot-time SRAM scrub, which models a physical effect
 * rather than firmware work) get an inline add into `skipped` instead: they are neither
 * counted as work nor charged against a budget, and the power never fails among them.
 * A memory callback on loads and stores counts the accesses (bus transfers: an LDM or STM
 * of k registers is k of them, an 8-byte access two) and their bytes into the `nvm` window
 * and the `sram` window, and attributes them, with the instructions, to where they happen:
 * an instruction inside an `own` range (the commit and restore code) to the first such
 * range; any other to the *segment* it runs in, that of the last `event` function entered
 * in this boot, or the boot segment before any (startup up to the first event). Each NVM
 * load costs `nvm_load_cost` and each NVM store `nvm_store_cost` instructions of the
 * boot's budget (an access beyond the core's zero-wait memory draws more than computing).
 * An access's cost is charged once the access has completed, and a failure only ever comes
 * before an instruction, so the failure a cost causes falls before the next instruction: a
 * store is never torn (an STM completes all its words), and a load that spent the last of
 * a charge has still delivered its value.
 * An NVM store made by an instruction inside a `stores` range is also recorded as
 * (id, count): the exact instructions at which a commit's first and last store happen
 * (an instruction that stores several words, such as an STM, is recorded once).
 * QEMU 7.2 emits a registered memory callback at each guest load or store it generates
 * code for (tcg_gen_qemu_ld/st), so the callback is registered on every instruction, with
 * no decoding: one without loads or stores pays nothing.
 *
 * Arguments (addresses with the Thumb bit cleared; numbers in C notation):
 *   out=PATH           where to write the JSON report at exit (required)
 *   mark=ADDR          address of intm_mark's first instruction
 *   event=ADDR         address of a function whose every entry is recorded in "events" as
 *                      [id, count], id being the number of this event= argument among the
 *                      event= arguments (from 0); may repeat, up to INTM_MAX_EVENTS times,
 *                      at distinct addresses
 *   stores=START:END   record every NVM store made by an instruction in [START, END) in
 *                      "stores" as [id, count], id being the number of this stores=
 *                      argument (from 0); may repeat, up to INTM_MAX_STORE_RANGES times
 *   skip=START:END     half-open range counted apart (the SRAM scrub)
 *   boot=ADDR          first instruction of a boot (the reset handler); needed by
 *                      budgets= and max_boots=
 *   budgets=PATH       text file, one integer per line: the instruction budget of boot 1,
 *                      boot 2, ...; boot i fails before its instruction number budget_i + 1
 *                      (fewer when NVM accesses are charged). After the last line, no more
 *                      failures.
 *   fail_at=K[,K2...]  failures before the instructions that would make the total count
 *                      K + 1, K2 + 1, ... (for exhaustive injection: exactly K instructions
 *                      run before the first failure, K2 before the second); the points must
 *                      not decrease, and K2 == K fails the recovery boot at its first
 *                      instruction. Failures of budgets= come on top of these.
 *   nvm=START:END      half-open address range of NVM; loads and stores there are counted
 *   sram=START:END     half-open address range of SRAM; loads and stores there are counted
 *   nvm_load_cost=X    instructions each NVM load access costs against the budget (default 0)
 *   nvm_store_cost=Y   instructions each NVM store access costs against the budget (default 0)
 *   range=START:END    count the instructions executed inside [START, END); may repeat, up to
 *                      INTM_MAX_RANGES times (range= and own= together), reported in the
 *                      order given
 *   own=START:END      a range= whose instructions also own what they do: their
 *                      instructions and accesses are the range's "traffic", not their
 *                      segment's
 *   max_boots=N        when boot N + 1 would start, end the emulation (exit status 0) with the
 *                      report written, so a firmware that never makes progress cannot run on
 *                      forever
 *
 * Report, written when QEMU exits (semihosting SYS_EXIT_EXTENDED, max_boots, or a signal):
 *   {"instructions": N, "skipped": S, "marks": [m0, ...], "events": [[id, c], ...],
 *    "stores": [[id, c], ...], "boots": B, "per_boot_instructions": [...],
 *    "per_boot_nvm_bytes": [...], "per_boot_nvm_loads": [...], "per_boot_nvm_stores": [...],
 *    "per_boot_nvm_load_bytes": [...], "failures": F, "failure_points": [p0, ...],
 *    "nvm_bytes_written": W, "traffic": T, "boot_traffic": T,
 *    "event_traffic": [T for each event id], "ranges": [{"start": a, "end": b,
 *    "instructions": n, "first": f, "traffic": T}, ...], "max_boots_reached": false}
 * where each T is {"instructions": n, "nvm_loads": .., "nvm_stores": .., "nvm_load_bytes": ..,
 * "nvm_store_bytes": .., "sram_loads": .., "sram_stores": .., "sram_load_bytes": ..,
 * "sram_store_bytes": ..}: the whole run's ("traffic"), the boot segments' of all boots, each
 * event's segments', each own= range's (zeros for a range=). The segments and own= ranges
 * partition the run: their instructions and accesses add up to the whole run's.
 * N excludes the skipped instructions; each mark and event count is the value of N before
 * the instruction ran, a store's count the value of N before the storing instruction ran
 * (a failure at K = c leaves the store undone, at K = c + 1 done), each failure point the
 * value of N when the power failed (instructions 1..p ran), and a range's `first` the value
 * of N before its first instruction ran (null when none did); the per-boot lists have one
 * entry per boot, the first included.
 * One vCPU, `-icount shift=0` and deterministic inputs give the same numbers on every run.
 *
 * Why per-instruction callbacks rather than inline adds or per-block counts: with -icount,
 * QEMU may abandon a block part-way (an I/O access that is not the block's last instruction)
 * and re-execute the rest in a new block that is not instrumented again; only
 * per-instruction work counts such a block exactly. And a callback (unlike an inline add)
 * can decide, before its instruction runs, that the power fails there.
 *
 * How the failure is injected. Plugin API v1 has no way to reset the machine, but
 * qemu-system-arm exports what its own monitor uses: hmp_system_reset() requests a reset
 * (as the guest's SYSRESETREQ does: the vCPU is marked stopped and the main loop resets the
 * machine before it runs again, reloading the ELF's load segments and keeping the rest of
 * RAM), and cpu_loop_exit_restore(current_cpu, ...) unwinds out of the executing block
 * without raising a guest exception, the way a faulting load does. They are looked up with
 * dlsym() when the plugin is installed.
 * current_cpu is a thread-local variable: dlsym() returns the calling thread's copy, so it is
 * looked up again from the vCPU thread, which is the only thread that runs these callbacks.
 *
 * Debian ships no qemu-plugin.h, so the few declarations used are repeated below; they
 * match QEMU 7.2's plugin API (version 1). QEMU checks qemu_plugin_version on load.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API, version 1 (QEMU 7.2 include/qemu/qemu-plugin.h) --------------- */

#define INTM_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;

typedef struct qemu_info_t {
  const char* target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags {
  QEMU_PLUGIN_CB_NO_REGS,
  QEMU_PLUGIN_CB_R_REGS,
  QEMU_PLUGIN_CB_RW_REGS,
};

enum qemu_plugin_mem_rw {
  QEMU_PLUGIN_MEM_R = 1,
  QEMU_PLUGIN_MEM_W,
  QEMU_PLUGIN_MEM_RW,
};

enum qemu_plugin_op {
  QEMU_PLUGIN_INLINE_ADD_U64,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
typedef void (*qemu_plugin_vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                                          uint64_t vaddr, void* userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn,
                                                enum qemu_plugin_op op, void* ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn* insn,
                                      qemu_plugin_vcpu_mem_cb_t cb,
                                      enum qemu_plugin_cb_flags flags,
                                      enum qemu_plugin_mem_rw rw, void* userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
unsigned int qemu_plugin_mem_size_shift(qemu_plugin_meminfo_t info);
bool qemu_plugin_mem_is_store(qemu_plugin_meminfo_t info);

INTM_EXPORT int qemu_plugin_version = 1;

/* ---- qemu-system-arm internals used to inject a failure (looked up at install) ------- */

typedef struct CPUState CPUState;
typedef void (*intm_system_reset_fn)(void* monitor, const void* qdict);
typedef void (*intm_loop_exit_fn)(CPUState* cpu, uintptr_t host_pc) __attribute__((noreturn));

static intm_system_reset_fn intm_hmp_system_reset;
static intm_loop_exit_fn intm_cpu_loop_exit_restore;

/* ---- State ------------------------------------------------------------------------- */

#define INTM_MAX_RANGES 16
#define INTM_MAX_EVENTS 4096
#define INTM_MAX_STORE_RANGES 8
#define INTM_MAX_FAIL_POINTS 64
#define INTM_NEVER UINT64_MAX

/* Per-instruction facts fixed at translation, packed into the callback's userdata. */
#define INTM_INSN_MARK (1u << 0)
#define INTM_INSN_BOOT (1u << 1)
#define INTM_INSN_RANGE_SHIFT 8 /* bits 8..23: the ranges holding the instruction */
#define INTM_INSN_OWNER_SHIFT 24 /* bits 24..31: 1 + the first own= range, 0 for none */
#define INTM_INSN_EVENT_SHIFT 32 /* bits 32..: 1 + the event id, 0 for none */
/* A memory callback's userdata: 1 + the stores= range (bits 0..7), 1 + the first own=
 * range holding the instruction (bits 8..15), each 0 for none. */
#define INTM_MEM_OWNER_SHIFT 8

_Static_assert(sizeof(uintptr_t) >= 8, "the per-instruction facts need a 64-bit host");

/* Loads and stores into the two counted windows, and the instructions that made them. */
typedef struct {
  uint64_t instructions;
  uint64_t nvm_loads, nvm_stores, nvm_load_bytes, nvm_store_bytes;
  uint64_t sram_loads, sram_stores, sram_load_bytes, sram_store_bytes;
} intm_traffic_t;

typedef struct {
  uint64_t* items;
  size_t size;
  size_t capacity;
} intm_list_t;

typedef struct {
  uint64_t start;
  uint64_t end;
  uint64_t instructions; /* executed inside [start, end) */
  uint64_t first;        /* intm_instructions before the first of them */
  bool owns;              /* an own= range: its instructions' work is its own */
  intm_traffic_t traffic; /* ... and counts here */
} intm_range_t;

static const char* intm_out_path;
/* Opened at install: semihosting leaks a host file handle per file the firmware opens in a
 * boot (QEMU keeps its handle table across resets), and after enough boots there may be
 * none left to open the report with. */
static FILE* intm_out;
static uint64_t intm_instructions; /* executed outside the skip range */
static uint64_t intm_skipped;      /* executed inside the skip range */
static uint64_t intm_skip_start;
static uint64_t intm_skip_end; /* empty range when start == end */
static bool intm_has_mark;
static uint64_t intm_mark_addr;
static intm_list_t intm_marks;
static uint64_t intm_event_addrs[INTM_MAX_EVENTS];
static size_t intm_num_events;
static intm_list_t intm_events; /* id, count, id, count, ...: entries of event functions */
static intm_range_t intm_store_ranges[INTM_MAX_STORE_RANGES];
static size_t intm_num_store_ranges;
static intm_list_t intm_stores; /* id, count, ...: NVM stores inside the store ranges */
static intm_range_t intm_ranges[INTM_MAX_RANGES];
static size_t intm_num_ranges;

/* Segments: 0 is the boot segment (each boot up to its first event), 1 + e that of event e
 * (from an entry of its function to the next event entry or boot). */
static intm_traffic_t intm_segments[1 + INTM_MAX_EVENTS];
static size_t intm_segment; /* the segment the running instruction is in */
static intm_traffic_t intm_total;

/* Boots. */
static bool intm_has_boot;
static uint64_t intm_boot_addr;
static uint64_t intm_boots;
static bool intm_boot_open;      /* a boot has started and its counts are not in the lists */
static uint64_t intm_boot_first; /* intm_instructions when the current boot started */
static uint64_t intm_boot_nvm;   /* NVM bytes stored during the current boot */
static uint64_t intm_boot_nvm_loads;      /* NVM load accesses during the current boot */
static uint64_t intm_boot_nvm_stores;     /* NVM store accesses during the current boot */
static uint64_t intm_boot_nvm_load_bytes; /* NVM bytes loaded during the current boot */
static intm_list_t intm_per_boot_instructions;
static intm_list_t intm_per_boot_nvm;
static intm_list_t intm_per_boot_nvm_loads;
static intm_list_t intm_per_boot_nvm_stores;
static intm_list_t intm_per_boot_nvm_load_bytes;
static uint64_t intm_max_boots = INTM_NEVER;
static bool intm_max_boots_reached;

/* NVM. */
static bool intm_has_nvm;
static uint64_t intm_nvm_start;
static uint64_t intm_nvm_end;
static uint64_t intm_nvm_bytes;
static double intm_nvm_load_cost;  /* instructions of budget per NVM load access */
static double intm_nvm_store_cost; /* ... per NVM store access */
static bool intm_charges_nvm;      /* either cost is positive */

/* SRAM. */
static bool intm_has_sram;
static uint64_t intm_sram_start;
static uint64_t intm_sram_end;

/* Failure schedule. */
static intm_list_t intm_budgets;
static bool intm_has_budget;   /* the current boot has a budget */
static uint64_t intm_budget;   /* ... of this many instructions */
static uint64_t intm_fail_points[INTM_MAX_FAIL_POINTS];
static size_t intm_num_fail_points;
static size_t intm_next_fail_point;          /* index of the next fail_at point */
static uint64_t intm_fail_at = INTM_NEVER;   /* that point, or INTM_NEVER */
static uint64_t intm_failures;
static intm_list_t intm_failure_points; /* intm_instructions at each failure */
/* The power fails before an instruction when intm_instructions has reached this value.
 * Kept up to date by boots and NVM accesses so the per-instruction test is one comparison. */
static uint64_t intm_threshold = INTM_NEVER;

/* qemu_plugin_outs() only reaches QEMU's log when started with `-d plugin`; use stderr. */
static void intm_fail(const char* message) { fprintf(stderr, "intm_icount: %s\n", message); }

static void intm_push(intm_list_t* list, uint64_t value) {
  if (list->size == list->capacity) {
    size_t capacity = list->capacity ? 2 * list->capacity : 64;
    uint64_t* grown = realloc(list->items, capacity * sizeof(*grown));
    if (grown == NULL) {
      intm_fail("out of memory");
      abort();
    }
    list->items = grown;
    list->capacity = capacity;
  }
  list->items[list->size++] = value;
}

/* ---- Failure schedule -------------------------------------------------------------- */

static void intm_update_threshold(void) {
  uint64_t threshold = intm_fail_at;
  if (intm_has_budget) {
    /* Instructions the boot may still run: budget - the cost of its NVM accesses, rounded
     * up, since the failure comes when the instructions plus that cost reach the budget. */
    double left = (double)intm_budget - intm_nvm_load_cost * (double)intm_boot_nvm_loads -
                  intm_nvm_store_cost * (double)intm_boot_nvm_stores;
    uint64_t allowed = 0;
    if (left > 0) {
      allowed = (uint64_t)left;
      if ((double)allowed < left) allowed += 1;
    }
    if (intm_boot_first + allowed < threshold) threshold = intm_boot_first + allowed;
  }
  intm_threshold = threshold;
}

/* Close the books of the current boot: its counts go into the per-boot lists. */
static void intm_end_boot(void) {
  if (!intm_boot_open) return;
  intm_push(&intm_per_boot_instructions, intm_instructions - intm_boot_first);
  intm_push(&intm_per_boot_nvm, intm_boot_nvm);
  intm_push(&intm_per_boot_nvm_loads, intm_boot_nvm_loads);
  intm_push(&intm_per_boot_nvm_stores, intm_boot_nvm_stores);
  intm_push(&intm_per_boot_nvm_load_bytes, intm_boot_nvm_load_bytes);
  intm_boot_open = false;
}

static void intm_start_boot(void) {
  intm_end_boot();
  if (intm_boots >= intm_max_boots) {
    /* Stop before the first instruction of the extra boot, the way semihosting's exit does
     * (exit() on this thread runs the atexit callbacks, which write the report). */
    intm_max_boots_reached = true;
    exit(0);
  }
  intm_boots += 1;
  intm_boot_open = true;
  intm_boot_first = intm_instructions;
  intm_boot_nvm = 0;
  intm_boot_nvm_loads = 0;
  intm_boot_nvm_stores = 0;
  intm_boot_nvm_load_bytes = 0;
  intm_segment = 0;
  intm_has_budget = intm_boots <= intm_budgets.size;
  intm_budget = intm_has_budget ? intm_budgets.items[intm_boots - 1] : 0;
  intm_update_threshold();
}

static CPUState* intm_current_cpu(void) {
  /* Thread-local: resolve in this (the vCPU) thread, once. */
  static __thread CPUState** slot;
  if (slot == NULL) slot = (CPUState**)dlsym(RTLD_DEFAULT, "current_cpu");
  return slot != NULL ? *slot : NULL;
}

/*
 * Cut the power before the current instruction: request a system reset and leave the
 * translation block without executing this instruction or any after it. The reset request
 * stops the vCPU, so nothing runs until the main loop has reset the machine; the next
 * instruction executed is the reset handler's first. `host_pc` is the return address of
 * the instruction's callback, inside the block's generated code (QEMU 7.2 calls exec
 * callbacks directly from there): from it QEMU finds the instruction, and gives the
 * instructions of the block that did not run back to -icount, whose virtual clock then
 * equals the executed instructions exactly, as without failures.
 */
__attribute__((noreturn)) static void intm_power_failure(uintptr_t host_pc) {
  CPUState* cpu = intm_current_cpu();
  if (cpu == NULL) {
    intm_fail("cannot find the executing vCPU (current_cpu) to inject a power failure");
    abort();
  }
  intm_failures += 1;
  intm_push(&intm_failure_points, intm_instructions);
  if (intm_instructions >= intm_fail_at) {
    /* This fail_at point is spent; the next one (if any) counts from power-on too. */
    intm_next_fail_point += 1;
    intm_fail_at = intm_next_fail_point < intm_num_fail_points
                       ? intm_fail_points[intm_next_fail_point]
                       : INTM_NEVER;
  }
  intm_has_budget = false;
  intm_threshold = intm_fail_at; /* the next boot adds its budget */
  intm_hmp_system_reset(NULL, NULL);
  intm_cpu_loop_exit_restore(cpu, host_pc);
}

/* ---- Callbacks --------------------------------------------------------------------- */

static void intm_on_insn(unsigned int vcpu_index, void* userdata) {
  (void)vcpu_index;
  uintptr_t facts = (uintptr_t)userdata;
  if (facts & INTM_INSN_BOOT) intm_start_boot();
  if (intm_instructions >= intm_threshold) {
    intm_power_failure((uintptr_t)__builtin_return_address(0));
  }
  if (facts & INTM_INSN_MARK) intm_push(&intm_marks, intm_instructions);
  uintptr_t event = facts >> INTM_INSN_EVENT_SHIFT;
  if (event != 0) {
    intm_push(&intm_events, event - 1);
    intm_push(&intm_events, intm_instructions);
    intm_segment = event; /* 1 + the event id */
  }
  uintptr_t owner = (facts >> INTM_INSN_OWNER_SHIFT) & 0xff;
  if (owner == 0) {
    intm_segments[intm_segment].instructions += 1;
  } else {
    intm_ranges[owner - 1].traffic.instructions += 1;
  }
  uintptr_t ranges = (facts >> INTM_INSN_RANGE_SHIFT) & ((1ul << INTM_MAX_RANGES) - 1);
  for (; ranges != 0; ranges &= ranges - 1) {
    intm_range_t* range = &intm_ranges[__builtin_ctzl(ranges)];
    if (range->instructions == 0) range->first = intm_instructions;
    range->instructions += 1;
  }
  intm_instructions += 1;
}

/* Count one access of `size` bytes, `transfers` bus transfers, into `traffic`. */
static inline void intm_count_nvm(intm_traffic_t* traffic, bool store, uint64_t size,
                                  uint64_t transfers) {
  if (store) {
    traffic->nvm_stores += transfers;
    traffic->nvm_store_bytes += size;
  } else {
    traffic->nvm_loads += transfers;
    traffic->nvm_load_bytes += size;
  }
}

static inline void intm_count_sram(intm_traffic_t* traffic, bool store, uint64_t size,
                                   uint64_t transfers) {
  if (store) {
    traffic->sram_stores += transfers;
    traffic->sram_store_bytes += size;
  } else {
    traffic->sram_loads += transfers;
    traffic->sram_load_bytes += size;
  }
}

static void intm_on_access(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
                           uint64_t vaddr, void* userdata) {
  (void)vcpu_index;
  bool in_nvm = vaddr >= intm_nvm_start && vaddr < intm_nvm_end;
  bool in_sram = vaddr >= intm_sram_start && vaddr < intm_sram_end;
  if (!in_nvm && !in_sram) return;
  uintptr_t facts = (uintptr_t)userdata;
  uintptr_t owner = (facts >> INTM_MEM_OWNER_SHIFT) & 0xff;
  intm_traffic_t* traffic = owner != 0 ? &intm_ranges[owner - 1].traffic
                                       : &intm_segments[intm_segment];
  bool store = qemu_plugin_mem_is_store(info);
  uint64_t size = 1ull << qemu_plugin_mem_size_shift(info);
  /* A Cortex-M4 bus transfer carries at most a word: an 8-byte access is two. */
  uint64_t transfers = size > 4 ? size / 4 : 1;
  if (in_sram) {
    intm_count_sram(traffic, store, size, transfers);
    intm_count_sram(&intm_total, store, size, transfers);
    return;
  }
  intm_count_nvm(traffic, store, size, transfers);
  intm_count_nvm(&intm_total, store, size, transfers);
  if (store) {
    /* The instruction callback ran before this store's instruction and counted it, so the
     * count before the storing instruction is one less. An STM calls this once per word:
     * record its first store only (the same count twice is the same instruction). */
    uintptr_t watched = facts & 0xff;
    uint64_t at = intm_instructions - 1;
    if (watched != 0 &&
        (intm_stores.size == 0 || intm_stores.items[intm_stores.size - 1] != at ||
         intm_stores.items[intm_stores.size - 2] != watched - 1)) {
      intm_push(&intm_stores, watched - 1);
      intm_push(&intm_stores, at);
    }
    intm_nvm_bytes += size;
    intm_boot_nvm += size;
    intm_boot_nvm_stores += transfers;
  } else {
    intm_boot_nvm_loads += transfers;
    intm_boot_nvm_load_bytes += size;
  }
  /* The access has completed: its cost moves the failure threshold, and a failure it
   * causes comes before the next instruction, never inside this one's access. */
  if (intm_charges_nvm) intm_update_threshold();
}

static void intm_on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t addr = qemu_plugin_insn_vaddr(insn);
    if (addr >= intm_skip_start && addr < intm_skip_end) {
      /* Never a failure point, and its accesses (the scrub's SRAM stores) are no work:
       * an inline add is enough. */
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 &intm_skipped, 1);
      continue;
    }
    uintptr_t facts = 0;
    if (intm_has_mark && addr == intm_mark_addr) facts |= INTM_INSN_MARK;
    for (size_t e = 0; e < intm_num_events; ++e) {
      if (addr == intm_event_addrs[e]) facts |= (uintptr_t)(e + 1) << INTM_INSN_EVENT_SHIFT;
    }
    if (intm_has_boot && addr == intm_boot_addr) facts |= INTM_INSN_BOOT;
    uintptr_t owner = 0; /* 1 + the first own= range holding the instruction */
    for (size_t r = 0; r < intm_num_ranges; ++r) {
      if (addr >= intm_ranges[r].start && addr < intm_ranges[r].end) {
        facts |= (uintptr_t)1 << (INTM_INSN_RANGE_SHIFT + r);
        if (owner == 0 && intm_ranges[r].owns) owner = r + 1;
      }
    }
    facts |= owner << INTM_INSN_OWNER_SHIFT;
    /* Exec callbacks run before their instruction, memory callbacks after each access. */
    qemu_plugin_register_vcpu_insn_exec_cb(insn, intm_on_insn, QEMU_PLUGIN_CB_NO_REGS,
                                           (void*)facts);
    if (intm_has_nvm || intm_has_sram) {
      uintptr_t watched = 0;
      for (size_t r = 0; r < intm_num_store_ranges && watched == 0; ++r) {
        if (addr >= intm_store_ranges[r].start && addr < intm_store_ranges[r].end) {
          watched = r + 1;
        }
      }
      qemu_plugin_register_vcpu_mem_cb(insn, intm_on_access, QEMU_PLUGIN_CB_NO_REGS,
                                       QEMU_PLUGIN_MEM_RW,
                                       (void*)(watched | owner << INTM_MEM_OWNER_SHIFT));
    }
  }
}

static void intm_write_list(FILE* out, const char* key, const intm_list_t* list) {
  fprintf(out, ", \"%s\": [", key);
  for (size_t i = 0; i < list->size; ++i) {
    fprintf(out, "%s%" PRIu64, i ? ", " : "", list->items[i]);
  }
  fprintf(out, "]");
}

/* A list of id, count, id, count, ... as [[id, count], ...]. */
static void intm_write_pairs(FILE* out, const char* key, const intm_list_t* list) {
  fprintf(out, ", \"%s\": [", key);
  for (size_t i = 0; i + 1 < list->size; i += 2) {
    fprintf(out, "%s[%" PRIu64 ", %" PRIu64 "]", i ? ", " : "", list->items[i],
            list->items[i + 1]);
  }
  fprintf(out, "]");
}

static void intm_write_traffic(FILE* out, const intm_traffic_t* t) {
  fprintf(out, "{\"instructions\": %" PRIu64 ", \"nvm_loads\": %" PRIu64
          ", \"nvm_stores\": %" PRIu64 ", \"nvm_load_bytes\": %" PRIu64
          ", \"nvm_store_bytes\": %" PRIu64 ", \"sram_loads\": %" PRIu64
          ", \"sram_stores\": %" PRIu64 ", \"sram_load_bytes\": %" PRIu64
          ", \"sram_store_bytes\": %" PRIu64 "}", t->instructions, t->nvm_loads,
          t->nvm_stores, t->nvm_load_bytes, t->nvm_store_bytes, t->sram_loads, t->sram_stores,
          t->sram_load_bytes, t->sram_store_bytes);
}

static void intm_write_report(void) {
  FILE* out = intm_out;
  fprintf(out, "{\"instructions\": %" PRIu64 ", \"skipped\": %" PRIu64, intm_instructions,
          intm_skipped);
  intm_write_list(out, "marks", &intm_marks);
  intm_write_pairs(out, "events", &intm_events);
  intm_write_pairs(out, "stores", &intm_stores);
  fprintf(out, ", \"boots\": %" PRIu64, intm_boots);
  intm_write_list(out, "per_boot_instructions", &intm_per_boot_instructions);
  intm_write_list(out, "per_boot_nvm_bytes", &intm_per_boot_nvm);
  intm_write_list(out, "per_boot_nvm_loads", &intm_per_boot_nvm_loads);
  intm_write_list(out, "per_boot_nvm_stores", &intm_per_boot_nvm_stores);
  intm_write_list(out, "per_boot_nvm_load_bytes", &intm_per_boot_nvm_load_bytes);
  fprintf(out, ", \"failures\": %" PRIu64, intm_failures);
  intm_write_list(out, "failure_points", &intm_failure_points);
  fprintf(out, ", \"nvm_bytes_written\": %" PRIu64, intm_nvm_bytes);
  intm_total.instructions = intm_instructions;
  fprintf(out, ", \"traffic\": ");
  intm_write_traffic(out, &intm_total);
  fprintf(out, ", \"boot_traffic\": ");
  intm_write_traffic(out, &intm_segments[0]);
  fprintf(out, ", \"event_traffic\": [");
  for (size_t e = 0; e < intm_num_events; ++e) {
    if (e) fprintf(out, ", ");
    intm_write_traffic(out, &intm_segments[1 + e]);
  }
  fprintf(out, "], \"ranges\": [");
  for (size_t r = 0; r < intm_num_ranges; ++r) {
    const intm_range_t* range = &intm_ranges[r];
    fprintf(out, "%s{\"start\": %" PRIu64 ", \"end\": %" PRIu64 ", \"instructions\": %" PRIu64
            ", \"first\": ", r ? ", " : "", range->start, range->end, range->instructions);
    if (range->instructions > 0) {
      fprintf(out, "%" PRIu64, range->first);
    } else {
      fprintf(out, "null");
    }
    fprintf(out, ", \"traffic\": ");
    intm_write_traffic(out, &range->traffic);
    fprintf(out, "}");
  }
  fprintf(out, "], \"max_boots_reached\": %s}\n", intm_max_boots_reached ? "true" : "false");
  if (fclose(out) != 0) intm_fail("cannot write the out= file");
}

static void intm_on_exit(qemu_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  intm_end_boot();
  intm_write_report();
}

/* ---- Installation ------------------------------------------------------------------ */

static bool intm_parse_u64(const char* text, char stop, uint64_t* value) {
  char* end = NULL;
  if (text[0] == '-') return false;
  errno = 0;
  *value = strtoull(text, &end, 0);
  return errno == 0 && end != text && *end == stop;
}

/* START:END, both addresses, START <= END. */
static bool intm_parse_range(const char* text, uint64_t* start, uint64_t* end) {
  const char* colon = strchr(text, ':');
  return colon != NULL && intm_parse_u64(text, ':', start) &&
         intm_parse_u64(colon + 1, '\0', end) && *start <= *end;
}

/* K or K1,K2,... (written K1,,K2 on QEMU's command line): non-decreasing failure points. */
static bool intm_parse_fail_points(const char* text) {
  intm_num_fail_points = 0;
  for (;;) {
    const char* comma = strchr(text, ',');
    uint64_t point;
    if (intm_num_fail_points == INTM_MAX_FAIL_POINTS ||
        !intm_parse_u64(text, comma != NULL ? ',' : '\0', &point)) {
      return false;
    }
    if (intm_num_fail_points > 0 && point < intm_fail_points[intm_num_fail_points - 1]) {
      return false;
    }
    intm_fail_points[intm_num_fail_points++] = point;
    if (comma == NULL) break;
    text = comma + 1;
  }
  intm_next_fail_point = 0;
  intm_fail_at = intm_fail_points[0];
  return true;
}

/* One positive integer per line; blank lines are ignored. */
static bool intm_read_budgets(const char* path) {
  FILE* file = fopen(path, "r");
  if (file == NULL) {
    fprintf(stderr, "intm_icount: cannot open budgets file '%s'\n", path);
    return false;
  }
  char line[64];
  unsigned long number = 0;
  bool ok = true;
  while (ok && fgets(line, sizeof(line), file) != NULL) {
    number += 1;
    size_t len = strcspn(line, "\r\n");
    if (len == 0) continue;
    line[len] = '\0';
    uint64_t budget;
    ok = intm_parse_u64(line, '\0', &budget);
    if (ok) {
      intm_push(&intm_budgets, budget);
    } else {
      fprintf(stderr, "intm_icount: %s line %lu: expected an instruction count, got '%s'\n",
              path, number, line);
    }
  }
  fclose(file);
  return ok;
}

/* A cost in instructions: a finite number >= 0. */
static bool intm_parse_cost(const char* text, double* cost) {
  char* end = NULL;
  *cost = strtod(text, &end);
  return end != text && *end == '\0' && *cost >= 0 && *cost < 1e300;
}

static bool intm_parse_arg(const char* arg) {
  const char* eq = strchr(arg, '=');
  if (eq == NULL) return false;
  size_t key_len = (size_t)(eq - arg);
  const char* value = eq + 1;
#define INTM_KEY(name) (key_len == sizeof(name) - 1 && strncmp(arg, name, key_len) == 0)
  if (INTM_KEY("out")) {
    intm_out_path = value;
    return value[0] != '\0';
  }
  if (INTM_KEY("mark")) return intm_has_mark = intm_parse_u64(value, '\0', &intm_mark_addr);
  if (INTM_KEY("event")) {
    if (intm_num_events == INTM_MAX_EVENTS) return false;
    uint64_t addr;
    if (!intm_parse_u64(value, '\0', &addr)) return false;
    for (size_t e = 0; e < intm_num_events; ++e) {
      if (intm_event_addrs[e] == addr) return false; /* one id per instruction */
    }
    intm_event_addrs[intm_num_events++] = addr;
    return true;
  }
  if (INTM_KEY("stores")) {
    if (intm_num_store_ranges == INTM_MAX_STORE_RANGES) return false;
    intm_range_t* range = &intm_store_ranges[intm_num_store_ranges++];
    return intm_parse_range(value, &range->start, &range->end);
  }
  if (INTM_KEY("boot")) return intm_has_boot = intm_parse_u64(value, '\0', &intm_boot_addr);
  if (INTM_KEY("skip")) return intm_parse_range(value, &intm_skip_start, &intm_skip_end);
  if (INTM_KEY("nvm")) return intm_has_nvm = intm_parse_range(value, &intm_nvm_start,
                                                              &intm_nvm_end);
  if (INTM_KEY("sram")) return intm_has_sram = intm_parse_range(value, &intm_sram_start,
                                                                &intm_sram_end);
  if (INTM_KEY("fail_at")) return intm_parse_fail_points(value);
  if (INTM_KEY("max_boots")) return intm_parse_u64(value, '\0', &intm_max_boots);
  if (INTM_KEY("budgets")) return intm_read_budgets(value);
  if (INTM_KEY("nvm_load_cost")) return intm_parse_cost(value, &intm_nvm_load_cost);
  if (INTM_KEY("nvm_store_cost")) return intm_parse_cost(value, &intm_nvm_store_cost);
  if (INTM_KEY("range") || INTM_KEY("own")) {
    if (intm_num_ranges == INTM_MAX_RANGES) return false;
    intm_range_t* range = &intm_ranges[intm_num_ranges++];
    range->owns = INTM_KEY("own");
    return intm_parse_range(value, &range->start, &range->end);
  }
#undef INTM_KEY
  return false;
}

/* Look up the qemu-system-arm functions a power failure needs; false when one is missing. */
static bool intm_find_reset_functions(void) {
  intm_hmp_system_reset = (intm_system_reset_fn)dlsym(RTLD_DEFAULT, "hmp_system_reset");
  intm_cpu_loop_exit_restore = (intm_loop_exit_fn)dlsym(RTLD_DEFAULT, "cpu_loop_exit_restore");
  const char* missing = intm_hmp_system_reset == NULL        ? "hmp_system_reset"
                        : intm_cpu_loop_exit_restore == NULL ? "cpu_loop_exit_restore"
                        : dlsym(RTLD_DEFAULT, "current_cpu") == NULL ? "current_cpu"
                                                                     : NULL;
  if (missing == NULL) return true;
  fprintf(stderr, "intm_icount: power failures need the symbol '%s', which this QEMU does not "
          "export (QEMU 7.2 does; check with `nm -D $(which qemu-system-arm)`)\n", missing);
  return false;
}

INTM_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                    char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (!intm_parse_arg(argv[i])) {
      fprintf(stderr, "intm_icount: bad argument '%s' (expected out=PATH, mark=ADDR, "
              "event=ADDR (at most %d, distinct), stores=START:END (at most %d), "
              "skip=START:END, boot=ADDR, budgets=PATH, fail_at=K[,K2...] (non-decreasing, "
              "at most %d), nvm=START:END, sram=START:END, nvm_load_cost=X >= 0, "
              "nvm_store_cost=Y >= 0, range=START:END and own=START:END (at most %d in all), "
              "max_boots=N)\n", argv[i], INTM_MAX_EVENTS, INTM_MAX_STORE_RANGES,
              INTM_MAX_FAIL_POINTS, INTM_MAX_RANGES);
      return -1;
    }
  }
  if (intm_out_path == NULL) {
    intm_fail("missing out=PATH");
    return -1;
  }
  intm_out = fopen(intm_out_path, "w");
  if (intm_out == NULL) {
    fprintf(stderr, "intm_icount: cannot open out=%s: %s\n", intm_out_path, strerror(errno));
    return -1;
  }
  if ((intm_nvm_load_cost > 0 || intm_nvm_store_cost > 0) && !intm_has_nvm) {
    intm_fail("nvm_load_cost= and nvm_store_cost= need nvm=START:END");
    return -1;
  }
  intm_charges_nvm = intm_nvm_load_cost > 0 || intm_nvm_store_cost > 0;
  if (intm_num_store_ranges > 0 && !intm_has_nvm) {
    intm_fail("stores= needs nvm=START:END (only NVM stores are recorded)");
    return -1;
  }
  if (!intm_has_boot && (intm_budgets.size > 0 || intm_max_boots != INTM_NEVER)) {
    intm_fail("budgets= and max_boots= need boot=ADDR (the reset handler) to see boots");
    return -1;
  }
  bool injects = intm_budgets.size > 0 || intm_fail_at != INTM_NEVER;
  if (injects && !intm_find_reset_functions()) return -1;
  if (injects && info->system_emulation && info->system.smp_vcpus != 1) {
    intm_fail("power failures need exactly one vCPU");
    return -1;
  }
  intm_update_threshold();
  qemu_plugin_register_vcpu_tb_trans_cb(id, intm_on_translate);
  qemu_plugin_register_atexit_cb(id, intm_on_exit, NULL);
  return 0;
}
