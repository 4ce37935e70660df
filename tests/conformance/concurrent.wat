;; SPEC [R-state-exclusive] [R-limit-instances] (idle instances kept per plugin).
;;
;; A pricing guest that would notice a second call on its instance while one is running: it
;; traps if its `busy` flag is already set, keeps the request's `duration_days` byte (the second
;; byte: requests must have `size_bytes` and `duration_days` below 128) in its memory across a
;; busy loop of 5,000 iterations, and then answers base = total = that byte, read back from
;; memory, all other amounts 0 and no adjustments.
(module
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  (global $busy (mut i32) (i32.const 0))

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (local $i i32)
    (if (global.get $busy) (then (unreachable)))
    (global.set $busy (i32.const 1))
    (drop (call $input_read (i32.const 0x100) (i32.const 64)))
    (i32.store8 (i32.const 0x200) (i32.load8_u (i32.const 0x101)))
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const 5000))))
    (i64.store (i32.const 0x300) (i64.const 0))
    (i32.store8 (i32.const 0x300) (i32.load8_u (i32.const 0x200)))   ;; base
    (i32.store8 (i32.const 0x305) (i32.load8_u (i32.const 0x200)))   ;; total
    (global.set $busy (i32.const 0))
    (drop (call $output_set (i32.const 0x300) (i32.const 7)))
    (i32.const 0))
)
