;; SPEC [R-shape-exports-other] [R-shape-marker-uncalled].
;;
;; A pricing guest with more exports than it needs: functions named like the entry points of
;; other conventions (`_start`, `_initialize`, `main`), a global, a table, a second name for its
;; memory. Every function but the entry traps if called, the marker included. The entry answers
;; with the 7-byte Quote of section 8.5 (100 / 10 / 5 / 2 / 15 / 117 µZHTP, no adjustments).
(module
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") (export "heap") 1)
  (table (export "table") 1 funcref)
  (global (export "answer") i32 (i32.const 42))
  (data (i32.const 0) "\64\0a\05\02\0f\75\00")

  (func (export "zhtp_abi_v1") unreachable)
  (func (export "_start") unreachable)
  (func (export "_initialize") unreachable)
  (func (export "main") (param i32 i32) (result i32) unreachable)
  (func (export "pricing_quote_v2") (result i32) unreachable)

  (func (export "pricing_quote") (result i32)
    (drop (call $output_set (i32.const 0) (i32.const 7)))
    (i32.const 0))
)
