;; SPEC [R-limit-table] [R-shape-table].
;;
;; A table of 1 element with no declared maximum, against the table cap of 10,000 elements.
;; Called through `Plugin::call`; the input's length selects the case (each expects a fresh
;; instance: the test loads the module once per case):
;;   0  grows to exactly 10,000 elements and outputs what `table.grow` / `table.size`
;;      returned, as little-endian i32 words;
;;   1  grows by 10,000 elements at once: past the cap.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (if (call $input_len)
      (then (return (table.grow $t (ref.null func) (i32.const 10000)))))
    (i32.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 9999)))   ;; 1
    (i32.store (i32.const 4) (table.size $t))                                    ;; 10,000
    (i32.store (i32.const 8) (table.grow $t (ref.null func) (i32.const 0)))      ;; 10,000
    (drop (call $output_set (i32.const 0) (i32.const 12)))
    (i32.const 0))
)
