;; SPEC [R-check-monotone] [R-check-refusal].
;;
;; A pricing guest whose price falls when the size doubles: it quotes base = total = 10 when the
;; request's first byte (the first byte of size_bytes) is 01, as for the self-check's first
;; request (1 B), and base = total = 5 for anything else, such as the doubled one (2 B).
(module
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\0a\00\00\00\00\0a\00")   ;; base 10, total 10
  (data (i32.const 16) "\05\00\00\00\00\05\00")  ;; base 5, total 5

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (drop (call $input_read (i32.const 0x100) (i32.const 64)))
    (if (i32.eq (i32.load8_u (i32.const 0x100)) (i32.const 1))
      (then
        (drop (call $output_set (i32.const 0) (i32.const 7)))
        (return (i32.const 0))))
    (drop (call $output_set (i32.const 16) (i32.const 7)))
    (i32.const 0))
)
