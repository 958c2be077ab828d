/*
 * intm_mspabi.S - multiplication helpers of the MSP430 EABI on the hardware multiplier,
 * and the entry points of 64-bit division.
 *
 * The multiplier is the 16-bit MPY unit at 0x0130 (mspdebug: `simio add hwmult mpy`):
 * writing MPY then OP2 starts an unsigned 16x16 multiplication whose 32-bit product is
 * in RESLO:RESHI on the next instruction. An N-bit product's low N bits do not depend on
 * the operands' signs, so the unsigned unit serves signed and unsigned C alike.
 *
 * clang calls __mspabi_mpyi/_mpyl with the ordinary convention (operands in r12, r12:r13
 * and r14:r15; r11-r15 may be clobbered), __mspabi_mpyll_hw with the first operand in
 * r12:r15 and the second on the stack, but __mspabi_mpyll and the 64-bit divisions with a
 * convention of their own: operands in r8:r11 and r12:r15, result in r12:r15. A C
 * definition of those would read its second operand from the stack and compute garbage,
 * which is why they are here. Every routine keeps r4-r11 intact.
 */

        .equ    MPY,    0x0130
        .equ    OP2,    0x0138
        .equ    RESLO,  0x013A
        .equ    RESHI,  0x013C

        .text

/* int16 r12 = r12 * r13 */
        .global __mspabi_mpyi_hw
        .global __mspabi_mpyi
        .type   __mspabi_mpyi_hw,@function
        .type   __mspabi_mpyi,@function
__mspabi_mpyi_hw:
__mspabi_mpyi:
        mov     r12, &MPY
        mov     r13, &OP2
        mov     &RESLO, r12
        ret
        .size   __mspabi_mpyi_hw, .-__mspabi_mpyi_hw
        .size   __mspabi_mpyi, .-__mspabi_mpyi

/* int32 r12:r13 = r12:r13 * r14:r15 (low 32 bits):
 * lo(a0 b0) + ((hi(a0 b0) + lo(a0 b1) + lo(a1 b0)) << 16) */
        .global __mspabi_mpyl_hw
        .global __mspabi_mpyl
        .type   __mspabi_mpyl_hw,@function
        .type   __mspabi_mpyl,@function
__mspabi_mpyl_hw:
__mspabi_mpyl:
        push    r11
        mov     r12, &MPY
        mov     r15, &OP2
        mov     &RESLO, r11
        mov     r13, &MPY
        mov     r14, &OP2
        add     &RESLO, r11
        mov     r12, &MPY
        mov     r14, &OP2
        mov     &RESLO, r12
        mov     &RESHI, r13
        add     r11, r13
        pop     r11
        ret
        .size   __mspabi_mpyl_hw, .-__mspabi_mpyl_hw
        .size   __mspabi_mpyl, .-__mspabi_mpyl

/* int64 r12:r15 = r8:r11 * r12:r15 (low 64 bits), the builtin convention. With a = r8:r11
 * and b = r12:r15 in 16-bit digits, digit k of the product sums a_i b_j over i + j = k,
 * carries included; the accumulator is r4:r7. */
        .global __mspabi_mpyll
        .type   __mspabi_mpyll,@function
__mspabi_mpyll:
        push    r4
        push    r5
        push    r6
        push    r7
        /* k = 0 */
        mov     r8, &MPY
        mov     r12, &OP2
        mov     &RESLO, r4
        mov     &RESHI, r5
        clr     r6
        clr     r7
        /* k = 1: two products, each 32 bits at digit 1, carry into digit 3 */
        mov     r8, &MPY
        mov     r13, &OP2
        add     &RESLO, r5
        addc    &RESHI, r6
        adc     r7
        mov     r9, &MPY
        mov     r12, &OP2
        add     &RESLO, r5
        addc    &RESHI, r6
        adc     r7
        /* k = 2: three products at digit 2; what carries past digit 3 is dropped */
        mov     r8, &MPY
        mov     r14, &OP2
        add     &RESLO, r6
        addc    &RESHI, r7
        mov     r9, &MPY
        mov     r13, &OP2
        add     &RESLO, r6
        addc    &RESHI, r7
        mov     r10, &MPY
        mov     r12, &OP2
        add     &RESLO, r6
        addc    &RESHI, r7
        /* k = 3: four products, only their low digits count */
        mov     r8, &MPY
        mov     r15, &OP2
        add     &RESLO, r7
        mov     r9, &MPY
        mov     r14, &OP2
        add     &RESLO, r7
        mov     r10, &MPY
        mov     r13, &OP2
        add     &RESLO, r7
        mov     r11, &MPY
        mov     r12, &OP2
        add     &RESLO, r7
        mov     r4, r12
        mov     r5, r13
        mov     r6, r14
        mov     r7, r15
        pop     r7
        pop     r6
        pop     r5
        pop     r4
        ret
        .size   __mspabi_mpyll, .-__mspabi_mpyll

/* int64 r12:r15 = r12:r15 * (second operand on the stack), the ordinary convention. */
        .global __mspabi_mpyll_hw
        .type   __mspabi_mpyll_hw,@function
__mspabi_mpyll_hw:
        push    r8
        push    r9
        push    r10
        push    r11
        /* 8 bytes pushed + the return address: the operand starts at 10(r1). */
        mov     10(r1), r8
        mov     12(r1), r9
        mov     14(r1), r10
        mov     16(r1), r11
        call    #__mspabi_mpyll
        pop     r11
        pop     r10
        pop     r9
        pop     r8
        ret
        .size   __mspabi_mpyll_hw, .-__mspabi_mpyll_hw

/* 64-bit division: r12:r15 = f(r8:r11, r12:r15), forwarded to the C function of
 * intm_libc.c with the ordinary convention (first operand in r12:r15, second on the
 * stack). r11 is saved because the C callee may clobber it. */
        .macro  INTM_DIV64 name, impl
        .global \name
        .type   \name,@function
\name:
        push    r11
        push    r15
        push    r14
        push    r13
        push    r12
        mov     r8, r12
        mov     r9, r13
        mov     r10, r14
        mov     r11, r15
        call    #\impl
        add     #8, r1
        pop     r11
        ret
        .size   \name, .-\name
        .endm

        INTM_DIV64 __mspabi_divlli, intm_divlli
        INTM_DIV64 __mspabi_divull, intm_divull
        INTM_DIV64 __mspabi_remlli, intm_remlli
        INTM_DIV64 __mspabi_remull, intm_remull
