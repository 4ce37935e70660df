;; SPEC [R-shape-memory-max] [R-limit-memory].
;;
;; Declares a maximum of 2 pages, below the test host's 4 MiB cap (64 pages). Called through
;; `Plugin::call`; the input's length selects the case (each expects a fresh instance: the
;; test loads the module once per case):
;;   0  grows to the declared maximum and once past it (within the cap), and outputs what each
;;      `memory.grow` / `memory.size` returned, as little-endian i32 words;
;;   1  grows by 100 pages at once: past both the declared maximum and the cap.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1 2)

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (if (call $input_len)
      (then (return (memory.grow (i32.const 100)))))
    (i32.store (i32.const 0) (memory.grow (i32.const 1)))     ;; 1, now 2 pages
    (i32.store (i32.const 4) (memory.grow (i32.const 1)))     ;; -1: past the declared maximum
    (i32.store (i32.const 8) (memory.grow (i32.const 0)))     ;; 2
    (i32.store (i32.const 12) (memory.size))                  ;; 2
    (drop (call $output_set (i32.const 0) (i32.const 16)))
    (i32.const 0))
)
