;; SPEC [R-shape-memory-max] [R-limit-memory].
;;
;; Declares a maximum of 1,000 pages, above the test host's 4 MiB cap (64 pages): the module
;; loads, and the cap wins at run time. Called through `Plugin::call`; the input's length
;; selects the case (each expects a fresh instance: the test loads the module once per case):
;;   0  grows within the cap, up to exactly 64 pages, and outputs what each `memory.grow` /
;;      `memory.size` returned, as little-endian i32 words;
;;   1  grows by 64 pages at once: past the cap (but within the declared maximum).
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1 1000)

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (if (call $input_len)
      (then (return (memory.grow (i32.const 64)))))
    (i32.store (i32.const 0) (memory.grow (i32.const 0)))     ;; 1
    (i32.store (i32.const 4) (memory.grow (i32.const 62)))    ;; 1, now 63 pages
    (i32.store (i32.const 8) (memory.grow (i32.const 1)))     ;; 63, now 64 pages: the cap
    (i32.store (i32.const 12) (memory.grow (i32.const 0)))    ;; 64
    (i32.store (i32.const 16) (memory.size))                  ;; 64
    (drop (call $output_set (i32.const 0) (i32.const 20)))
    (i32.const 0))
)
