;; SPEC [R-check-requests] [R-check-success] [R-req-canonical] [R-state-persist].
;;
;; A pricing guest that keeps a log of every request it is sent in its memory (a length byte,
;; then the request's bytes) and answers each with the 7-byte Quote of section 8.5
;; (100 / 10 / 5 / 2 / 15 / 117 µZHTP, no adjustments), which passes the self-check. Called
;; with an empty input (through `Plugin::call`; the host never sends a pricing plugin one) it
;; outputs its log instead.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\64\0a\05\02\0f\75\00")

  ;; The end of the log, which starts at 0x1000.
  (global $end (mut i32) (i32.const 0x1000))

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (local $n i32)
    (local.set $n (call $input_len))
    (if (i32.eqz (local.get $n))
      (then
        (drop (call $output_set (i32.const 0x1000) (i32.sub (global.get $end) (i32.const 0x1000))))
        (return (i32.const 0))))
    (i32.store8 (global.get $end) (local.get $n))
    (drop (call $input_read (i32.add (global.get $end) (i32.const 1)) (local.get $n)))
    (global.set $end (i32.add (global.get $end) (i32.add (local.get $n) (i32.const 1))))
    (drop (call $output_set (i32.const 0) (i32.const 7)))
    (i32.const 0))
)
