/*
 * intm_app_example.c - an application's main loop on the device loop (intm_app.h).
 *
 * A sensing device classifies one sample after another: sense fills the model's inputs,
 * intm_infer() runs (or resumes) the inference across power failures, act delivers the
 * result, intm_next_inference() makes the next call take a new sample. Build it instead of
 * the one-shot harness with `make example`.
 *
 * Here the "sensor" is the platform's input stream and the "actuator" its output stream, so
 * the example runs on QEMU and the host alike: input.bin holds one sample after another
 * (every input tensor, in order, per sample), output.bin receives one result per sample,
 * and the loop ends when the samples run out (the platform then reports a short read). On a
 * real device sense would read an ADC into intm_model_input(i) and act would drive a pin
 * or a radio; the loop stays the same.
 *
 * act may run twice for one sample (a power failure after it, before the next commit):
 * here that writes the same result twice; a real application sends the same verdict twice
 * or keeps in NVM which results it delivered.
 */
#include "intm_app.h"
#include "intm_runtime.h"
#include "model.h"

/* What the application keeps between callbacks; SRAM, so it starts over at every boot. */
typedef struct {
  uint32_t samples_taken;
  uint32_t results_delivered;
} example_state_t;

static intm_status_t example_sense(void* context) {
  example_state_t* state = (example_state_t*)context;
  for (int i = 0; i < INTM_MODEL_NUM_INPUTS; ++i) {
    intm_status_t status =
        intm_platform_read_input(i, intm_model_input(i), intm_model_inputs[i].nbytes);
    if (status != INTM_OK) return status;
  }
  state->samples_taken += 1u;
  return INTM_OK;
}

static intm_status_t example_act(void* context) {
  example_state_t* state = (example_state_t*)context;
  for (int i = 0; i < INTM_MODEL_NUM_OUTPUTS; ++i) {
    intm_status_t status =
        intm_platform_write_output(i, intm_model_output(i), intm_model_outputs[i].nbytes);
    if (status != INTM_OK) return status;
  }
  state->results_delivered += 1u;
  return INTM_OK;
}

int main(void) {
  example_state_t state = {0u, 0u};
  const intm_app_t app = {example_sense, example_act, &state};
  intm_platform_init();
  for (;;) {
    intm_status_t status = intm_infer(&app);
    if (status == INTM_ERROR_SIZE) {
      break; /* the sensor has no further sample: a real device would sleep here instead */
    }
    if (status != INTM_OK) {
      intm_platform_log("intm example: inference failed: ");
      intm_platform_log(intm_status_text(status));
      intm_platform_log("\n");
      intm_platform_exit((int)status);
    }
    intm_next_inference();
  }
  intm_platform_log("intm example: no more samples\n");
  intm_platform_exit((int)INTM_OK);
}
