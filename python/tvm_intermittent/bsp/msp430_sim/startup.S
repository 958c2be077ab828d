/*
 * startup.S - reset handler and vector table of the emulated MSP430.
 *
 * A power failure is a reset (the simulator's `reset`, after the host scrubbed SRAM), so
 * this code runs once per boot and may run any number of times in one emulation. It keeps
 * no state: it sets the stack pointer to the top of SRAM, with interrupts off (they stay
 * off: the firmware uses none), and calls intm_boot (intm_platform_msp430.c), which
 * rebuilds .data and .bss and runs main. Nothing here touches FRAM.
 *
 * Every vector other than reset points at intm_unexpected_interrupt, which exits with
 * INTM_FAULT_STATUS_BASE + the vector number's stand-in 0 through the exit trap, so a
 * stray interrupt ends the emulation instead of running garbage.
 */

        .section .intm_reset,"ax",@progbits
        .global intm_reset_handler
        .type   intm_reset_handler,@function
intm_reset_handler:
        dint
        nop
        mov     #intm_stack_top, r1
        call    #intm_boot
        /* intm_boot never returns; should it, stop at the exit trap. */
        jmp     intm_reset_handler
        .size   intm_reset_handler, .-intm_reset_handler

        .global intm_unexpected_interrupt
        .type   intm_unexpected_interrupt,@function
intm_unexpected_interrupt:
        mov     #intm_stack_top, r1
        call    #intm_fault_exit
        .size   intm_unexpected_interrupt, .-intm_unexpected_interrupt

        .section .intm_vectors,"a",@progbits
        .rept   63
        .word   intm_unexpected_interrupt
        .endr
        .word   intm_reset_handler
