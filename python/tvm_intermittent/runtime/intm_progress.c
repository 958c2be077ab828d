/*
 * intm_progress.c - tear-safe commits of the progress record in NVM.
 *
 * Two slots hold versions of the record; each carries its layout word, the model hash, a
 * sequence number and a check word computed over all its other fields. The valid slot with
 * the later sequence number (serial-number order, so the count may wrap) is the committed
 * progress. A commit fills in the slot that does NOT hold the committed progress and
 * finishes by writing its check word; the reasoning through a power failure at each store
 * is beside the stores in intm_progress_commit().
 */
#include "intm_progress.h"

#include <stddef.h>

typedef struct {
  uint32_t layout; /**< INTM_RECORD_MAGIC | INTM_RECORD_LAYOUT */
  uint32_t model_hash;
  uint32_t sequence;
  uint32_t phase;
  uint32_t task;
  uint32_t tile;
  uint32_t check; /**< intm_record_check() of the words above; 0 while being written */
} intm_record_t;

/* The first two words are the contract with every other layout (see intm_progress.h), the
 * check word is last (it is written last), and the record is whole 32-bit words (each store
 * is atomic on the Cortex-M). A change here needs a new INTM_RECORD_LAYOUT. */
_Static_assert(offsetof(intm_record_t, layout) == 0, "layout word must stay first");
_Static_assert(offsetof(intm_record_t, model_hash) == 4, "model hash must stay second");
_Static_assert(offsetof(intm_record_t, check) == sizeof(intm_record_t) - 4,
               "check word must be last");
_Static_assert(sizeof(intm_record_t) == 7 * sizeof(uint32_t), "record of layout 2 is 7 words");
_Static_assert((INTM_RECORD_MAGIC & 0xFFu) == 0 && INTM_RECORD_LAYOUT <= 0xFFu,
               "layout version must fit the magic's low byte");

typedef struct {
  uint32_t layout;
  uint32_t model_hash;
  uint32_t futile_boots; /**< starts since the last commit */
} intm_boot_counter_t;

#define INTM_LAYOUT_WORD (INTM_RECORD_MAGIC | INTM_RECORD_LAYOUT)

INTM_NVM static volatile intm_record_t intm_records[2];
INTM_NVM static volatile intm_boot_counter_t intm_boots;

/* SRAM copy of which slot holds the committed progress; rebuilt by restore at every boot. */
static int intm_committed_slot = -1;
static uint32_t intm_committed_sequence;
static uint32_t intm_hash;

/*
 * The check: a word-wise FNV-1a chain and a final mix. Each step (xor a word, multiply by
 * an odd number, xor-shift) is a bijection, so a change of any one field always changes the
 * check; a change of several passes unnoticed with a chance of about 2^-31. A word per step
 * rather than a byte keeps the commit short (bench/commit_cost.py measures it).
 */
static uint32_t intm_record_check(uint32_t layout, uint32_t hash, uint32_t sequence,
                                  uint32_t phase, uint32_t task, uint32_t tile) {
  const uint32_t words[6] = {layout, hash, sequence, phase, task, tile};
  uint32_t h = 2166136261u;
  for (int i = 0; i < 6; ++i) {
    h = (h ^ words[i]) * 16777619u;
  }
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  return h | 1u; /* never 0: 0 marks a slot being written */
}

/* Whether the record is complete and sealed by its own check (whatever its model). */
static int intm_record_sealed(const volatile intm_record_t* r) {
  return r->layout == INTM_LAYOUT_WORD && r->phase <= INTM_PHASE_DONE &&
         r->check == intm_record_check(r->layout, r->model_hash, r->sequence, r->phase, r->task,
                                       r->tile);
}

/*
 * Serial-number order (RFC 1982 style): `a` is later than `b` when a - b, modulo 2^32, is
 * in [1, 2^31). The two slots always hold consecutive numbers, so the order stays right
 * when the sequence wraps from 0xFFFFFFFF to 0 (after 4 billion commits, a few months of
 * one commit a millisecond).
 */
static int intm_sequence_later(uint32_t a, uint32_t b) {
  uint32_t ahead = a - b;
  return ahead != 0u && ahead < 0x80000000u;
}

/* Print "0x" and eight hex digits without printf (no heap, no large stack). Cold, as is
 * all of the report below: it runs once, after new firmware, and is kept out of the
 * restore that every boot runs, optimised for size. */
__attribute__((cold)) static void intm_log_hex(uint32_t value) {
  char text[11] = {'0', 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 8; ++i) {
    uint32_t nibble = (value >> (28 - 4 * i)) & 0xFu;
    text[2 + i] = (char)(nibble < 10u ? '0' + nibble : 'a' + nibble - 10u);
  }
  intm_platform_log(text);
}

__attribute__((cold)) static void intm_log_decimal(uint32_t value) {
  char text[11];
  int at = 10;
  text[at] = '\0';
  do {
    text[--at] = (char)('0' + value % 10u);
    value /= 10u;
  } while (value != 0u && at > 0);
  intm_platform_log(&text[at]);
}

/* Say that NVM held another firmware's progress: the inference starts over, and an
 * operator who flashed new firmware over a device mid-inference should know why. */
__attribute__((cold, noinline)) static void intm_report_foreign(uint32_t hash,
                                                                 uint32_t layout) {
  intm_platform_log("intm: NVM holds progress of other firmware (hash ");
  intm_log_hex(hash);
  intm_platform_log(", layout ");
  intm_log_decimal(layout);
  intm_platform_log("); starting a new inference\n");
}

__attribute__((noinline)) intm_resume_point_t intm_progress_restore(uint32_t model_hash) {
  intm_resume_point_t point = {INTM_PHASE_FRESH, 0, 0};
  int foreign_slot = -1;
  intm_hash = model_hash;
  intm_committed_slot = -1;
  intm_committed_sequence = 0;
  for (int slot = 0; slot < 2; ++slot) {
    const volatile intm_record_t* r = &intm_records[slot];
    if (intm_record_sealed(r) && r->model_hash == model_hash) {
      if (intm_committed_slot < 0 || intm_sequence_later(r->sequence, intm_committed_sequence)) {
        intm_committed_slot = slot;
        intm_committed_sequence = r->sequence;
        point.phase = (intm_phase_t)r->phase;
        point.task = r->task;
        point.tile = r->tile;
      }
      /* ~(uint32_t): a plain ~0xFFu has int's 16 bits on MSP430 and drops the magic. */
    } else if ((r->layout & ~(uint32_t)0xFFu) == INTM_RECORD_MAGIC &&
               (r->layout != INTM_LAYOUT_WORD || intm_record_sealed(r))) {
      /* Another layout (whose check this firmware cannot verify, but whose magic a blank
       * or garbled slot would hardly carry), or a sealed record of another model. A slot
       * of this layout and model whose check fails is this firmware's own torn commit. */
      foreign_slot = slot;
    }
  }
  if (intm_committed_slot < 0 && foreign_slot >= 0) {
    const volatile intm_record_t* r = &intm_records[foreign_slot];
    intm_report_foreign(r->model_hash, r->layout & 0xFFu);
  }
  /* Livelock guard: count starts that did not commit. A counter of other firmware starts
   * from zero. A failure between these stores only miscounts one start. */
  if (intm_boots.model_hash != model_hash || intm_boots.layout != INTM_LAYOUT_WORD) {
    intm_boots.futile_boots = 0;
    intm_boots.model_hash = model_hash;
    intm_boots.layout = INTM_LAYOUT_WORD;
  }
  intm_boots.futile_boots = intm_boots.futile_boots + 1u;
  if (intm_boots.futile_boots > INTM_MAX_FUTILE_BOOTS) {
    intm_boots.futile_boots = 0; /* the next run, if any, starts counting again */
    intm_platform_log("intm: no progress: boots keep failing before the next commit\n");
    intm_platform_exit((int)INTM_ERROR_NO_PROGRESS);
  }
  return point;
}

/*
 * NOTE: a power failure at each step below (32-bit stores are atomic on the Cortex-M, a
 * failure falls between two instructions, and the barriers make the stores reach NVM in
 * program order):
 *   0. before the first store: nothing changed; the committed slot wins at the next boot.
 *   1. after `check = 0`: the target slot is invalid (check 0 never matches, since
 *      intm_record_check() never returns 0), whatever its other words hold; the committed
 *      slot wins. Barrier A makes the clear reach NVM before any field changes, so there is
 *      never a moment with new fields under the old, still matching check word.
 *   2. while the fields are written: the slot is still invalid (check 0); the committed
 *      slot wins, so a half-written record is never exposed.
 *   3. after `check = ...`: barrier B made every field reach NVM first, so the check vouches
 *      for the whole record; it has the later sequence number and is the committed progress
 *      from now on: the next boot resumes at `point`.
 *   4. after barrier C: the commit is in NVM before any store that follows it. This matters
 *      for what the caller does next: the tiles after `point` may overwrite what the tiles
 *      before it read (a split reduction's chunk c + 1 writes the slot chunk c read), so
 *      those stores must not reach NVM while the record still says "redo chunk c".
 *   5. the futile-boot counter is reset last; a failure before it only leaves one start
 *      counted that did commit, which delays the livelock verdict by nothing that matters.
 * So a failure never loses committed progress and never exposes a partial one.
 */
__attribute__((noinline)) void intm_progress_commit(const intm_resume_point_t* point) {
  int slot = intm_committed_slot == 0 ? 1 : 0;
  volatile intm_record_t* r = &intm_records[slot];
  uint32_t sequence = intm_committed_sequence + 1u; /* wraps; see intm_sequence_later() */
  r->check = 0u;
  INTM_NVM_BARRIER(); /* A */
  r->layout = INTM_LAYOUT_WORD;
  r->model_hash = intm_hash;
  r->sequence = sequence;
  r->phase = (uint32_t)point->phase;
  r->task = point->task;
  r->tile = point->tile;
  INTM_NVM_BARRIER(); /* B */
  r->check = intm_record_check(INTM_LAYOUT_WORD, intm_hash, sequence, (uint32_t)point->phase,
                               point->task, point->tile);
  INTM_NVM_BARRIER(); /* C */
  intm_committed_slot = slot;
  intm_committed_sequence = sequence;
  intm_boots.futile_boots = 0u;
}

#ifdef INTM_PROGRESS_TESTING
/* Host unit tests only: undo the last commit's final store, as a power failure just before
 * it would have left the slot (check word cleared, fields written). */
void intm_test_tear_slot(int slot) { intm_records[slot].check = 0u; }
void intm_test_tear_last_commit(void) { intm_test_tear_slot(intm_committed_slot); }

/* Host unit tests only: write slot `slot` as a record sealed with this file's check, so
 * tests can start near a sequence wrap or leave another firmware's record. */
void intm_test_seal_slot(int slot, uint32_t layout, uint32_t hash, uint32_t sequence,
                         uint32_t phase, uint32_t task, uint32_t tile) {
  volatile intm_record_t* r = &intm_records[slot];
  r->layout = layout;
  r->model_hash = hash;
  r->sequence = sequence;
  r->phase = phase;
  r->task = task;
  r->tile = tile;
  r->check = intm_record_check(layout, hash, sequence, phase, task, tile);
}
#endif
