/*
 * intm_icount.c - QEMU TCG plugin: exact guest instruction counts for the simulator.
 *
 * QEMU has no cycle counter for M-profile cores, so the simulator measures work in executed
 * instructions. This plugin counts every executed guest instruction with an inline add
 * (no helper call, so counting stays cheap) and records the running count each time the
 * instruction at `mark` executes: the firmware calls intm_mark() right before and right
 * after the model, and the difference of the two records is the model's instruction count.
 * Instructions inside `skip` (the boot-time SRAM scrub, which models a physical effect
 * rather than firmware work) are counted separately.
 *
 * Arguments (all addresses with the Thumb bit cleared):
 *   out=PATH              where to write the result at exit (required)
 *   mark=0xADDR           address of intm_mark's first instruction (optional)
 *   skip=0xSTART:0xEND    half-open range counted apart (optional)
 *
 * Result, written when QEMU exits (including through semihosting SYS_EXIT_EXTENDED):
 *   {"instructions": N, "skipped": S, "marks": [m0, m1, ...]}
 * where N excludes the skipped instructions and each m is the value of N before the marked
 * instruction ran. One vCPU and deterministic inputs give the same numbers on every run.
 *
 * Why per-instruction rather than per-block counts: with -icount, QEMU may abandon a block
 * part-way (an I/O access that is not the block's last instruction) and re-execute the rest
 * in a new block that is not instrumented again; only per-instruction adds count such a
 * block exactly.
 *
 * Debian ships no qemu-plugin.h, so the few declarations used are repeated below; they
 * match QEMU 7.2's plugin API (version 1). QEMU checks qemu_plugin_version on load.
 */
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

enum qemu_plugin_op {
  QEMU_PLUGIN_INLINE_ADD_U64,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn,
                                                enum qemu_plugin_op op, void* ptr,
                                                uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);

INTM_EXPORT int qemu_plugin_version = 1;

/* ---- State ------------------------------------------------------------------------- */

static uint64_t intm_instructions; /* executed outside the skip range */
static uint64_t intm_skipped;      /* executed inside the skip range */

static bool intm_has_mark;
static uint64_t intm_mark_addr;
static uint64_t intm_skip_start;
static uint64_t intm_skip_end; /* empty range when start == end */
static const char* intm_out_path;

static uint64_t* intm_marks;
static size_t intm_num_marks;
static size_t intm_cap_marks;

/* qemu_plugin_outs() only reaches QEMU's log when started with `-d plugin`; use stderr. */
static void intm_fail(const char* message) { fprintf(stderr, "intm_icount: %s\n", message); }

/* ---- Callbacks --------------------------------------------------------------------- */

/*
 * The marked instruction gets this callback instead of an inline add, so that the value
 * recorded never depends on the order QEMU runs an instruction's callbacks in: record the
 * count of the instructions before it, then count it.
 */
static void intm_on_mark(unsigned int vcpu_index, void* userdata) {
  (void)vcpu_index;
  (void)userdata;
  if (intm_num_marks == intm_cap_marks) {
    size_t cap = intm_cap_marks ? 2 * intm_cap_marks : 64;
    uint64_t* grown = realloc(intm_marks, cap * sizeof(*grown));
    if (grown == NULL) {
      intm_fail("out of memory for marks");
      abort();
    }
    intm_marks = grown;
    intm_cap_marks = cap;
  }
  intm_marks[intm_num_marks++] = intm_instructions;
  intm_instructions += 1;
}

static void intm_on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t addr = qemu_plugin_insn_vaddr(insn);
    if (intm_has_mark && addr == intm_mark_addr) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, intm_on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else if (addr >= intm_skip_start && addr < intm_skip_end) {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 &intm_skipped, 1);
    } else {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                 &intm_instructions, 1);
    }
  }
}

static void intm_on_exit(qemu_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  FILE* out = fopen(intm_out_path, "w");
  if (out == NULL) {
    intm_fail("cannot open the out= file");
    return;
  }
  fprintf(out, "{\"instructions\": %" PRIu64 ", \"skipped\": %" PRIu64 ", \"marks\": [",
          intm_instructions, intm_skipped);
  for (size_t i = 0; i < intm_num_marks; ++i) {
    fprintf(out, "%s%" PRIu64, i ? ", " : "", intm_marks[i]);
  }
  fprintf(out, "]}\n");
  if (fclose(out) != 0) intm_fail("cannot write the out= file");
}

/* ---- Installation ------------------------------------------------------------------ */

static bool intm_parse_address(const char* text, uint64_t* value) {
  char* end = NULL;
  *value = strtoull(text, &end, 0);
  return end != text && (*end == '\0' || *end == ':');
}

static bool intm_parse_arg(const char* arg) {
  const char* eq = strchr(arg, '=');
  if (eq == NULL) return false;
  size_t key_len = (size_t)(eq - arg);
  const char* value = eq + 1;
  if (key_len == 3 && strncmp(arg, "out", 3) == 0) {
    intm_out_path = value;
    return value[0] != '\0';
  }
  if (key_len == 4 && strncmp(arg, "mark", 4) == 0) {
    intm_has_mark = intm_parse_address(value, &intm_mark_addr);
    return intm_has_mark;
  }
  if (key_len == 4 && strncmp(arg, "skip", 4) == 0) {
    const char* colon = strchr(value, ':');
    return colon != NULL && intm_parse_address(value, &intm_skip_start) &&
           intm_parse_address(colon + 1, &intm_skip_end) && intm_skip_start <= intm_skip_end;
  }
  return false;
}

INTM_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                    char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (!intm_parse_arg(argv[i])) {
      fprintf(stderr, "intm_icount: bad argument '%s' (expected out=PATH, mark=0xADDR, "
              "skip=0xSTART:0xEND)\n", argv[i]);
      return -1;
    }
  }
  if (intm_out_path == NULL) {
    intm_fail("missing out=PATH");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, intm_on_translate);
  qemu_plugin_register_atexit_cb(id, intm_on_exit, NULL);
  return 0;
}
