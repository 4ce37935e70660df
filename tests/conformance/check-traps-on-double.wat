;; SPEC [R-check-success] [R-check-refusal].
;;
;; A pricing guest that answers the 7-byte Quote of section 8.5 (117 µZHTP) when the request's
;; first byte (the first byte of size_bytes) is 01, as for the self-check's first request (1 B),
;; and traps for anything else, such as the doubled one (2 B).
(module
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\64\0a\05\02\0f\75\00")

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (drop (call $input_read (i32.const 0x100) (i32.const 64)))
    (if (i32.ne (i32.load8_u (i32.const 0x100)) (i32.const 1))
      (then (unreachable)))
    (drop (call $output_set (i32.const 0) (i32.const 7)))
    (i32.const 0))
)
