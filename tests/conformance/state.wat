;; SPEC [R-state-persist] [R-state-discard] [R-call-registers] [R-call-status-1]
;; [R-call-status-other] [R-call-no-output] [R-call-ended].
;;
;; A pricing guest that counts its calls in four places the spec says persist on a reused
;; instance: a global, a word of linear memory, the memory's size (it grows one page per call)
;; and a table's size (it grows one element per call). Requests must have `size_bytes` < 128,
;; so that `duration_days` is the request's second byte; `duration_days` < 128 selects what the
;; call does after counting:
;;    1 (and any value not listed)  answers status 0 with the Quote
;;         base = calls, quality_premium = memory word, network_fee = memory pages,
;;         escrow_fee = table size, max_bonus = input_len, total = the sum of the first four
;;         (every value below 128, so each is one byte);
;;    2  refuses (status 1) with the reason "no";
;;    3  returns status 2;
;;    4  returns 0 without setting an output;
;;    5  traps (`unreachable`) after setting a valid output;
;;    6  returns 0 with the output `ff` (not a Quote);
;;    7  calls `abort(7, "bye")`;
;;    8  calls `output_set(0, 65,537)`;
;;    9  loops forever;
;;   10  returns status -1;
;;   11  grows its memory past any cap;
;;   12  recurses without end;
;;   13  returns status 1 without setting an output.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "abort" (func $abort (param i32 i32 i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (data (i32.const 16) "no")
  (data (i32.const 32) "bye")
  (data (i32.const 48) "\ff")

  (global $calls (mut i32) (i32.const 0))

  (func (export "zhtp_abi_v1"))

  (func $down (param i32) (result i32)
    (call $down (i32.add (local.get 0) (i32.const 1))))

  ;; Writes the Quote at 0x200 and sets it as the output.
  (func $answer
    (local $mem i32) (local $pages i32) (local $table i32)
    (local.set $mem (i32.load (i32.const 0x80)))
    (local.set $pages (memory.size))
    (local.set $table (table.size $t))
    (i32.store8 (i32.const 0x200) (global.get $calls))
    (i32.store8 (i32.const 0x201) (local.get $mem))
    (i32.store8 (i32.const 0x202) (local.get $pages))
    (i32.store8 (i32.const 0x203) (local.get $table))
    (i32.store8 (i32.const 0x204) (call $input_len))
    (i32.store8 (i32.const 0x205)
      (i32.add (i32.add (global.get $calls) (local.get $mem))
               (i32.add (local.get $pages) (local.get $table))))
    (i32.store8 (i32.const 0x206) (i32.const 0))
    (drop (call $output_set (i32.const 0x200) (i32.const 7))))

  (func (export "pricing_quote") (result i32)
    (local $mode i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 0x80) (i32.add (i32.load (i32.const 0x80)) (i32.const 1)))
    (drop (memory.grow (i32.const 1)))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (drop (call $input_read (i32.const 0x100) (i32.const 64)))
    (local.set $mode (i32.load8_u (i32.const 0x101)))

    (if (i32.eq (local.get $mode) (i32.const 2))
      (then
        (drop (call $output_set (i32.const 16) (i32.const 2)))
        (return (i32.const 1))))
    (if (i32.eq (local.get $mode) (i32.const 3))
      (then (return (i32.const 2))))
    (if (i32.eq (local.get $mode) (i32.const 4))
      (then (return (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 5))
      (then
        (call $answer)
        (unreachable)))
    (if (i32.eq (local.get $mode) (i32.const 6))
      (then
        (drop (call $output_set (i32.const 48) (i32.const 1)))
        (return (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 7))
      (then
        (call $abort (i32.const 7) (i32.const 32) (i32.const 3))
        (unreachable)))
    (if (i32.eq (local.get $mode) (i32.const 8))
      (then (return (call $output_set (i32.const 0) (i32.const 65537)))))
    (if (i32.eq (local.get $mode) (i32.const 9))
      (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $mode) (i32.const 10))
      (then (return (i32.const -1))))
    (if (i32.eq (local.get $mode) (i32.const 11))
      (then (return (memory.grow (i32.const 0x8000)))))
    (if (i32.eq (local.get $mode) (i32.const 12))
      (then (return (call $down (i32.const 0)))))
    (if (i32.eq (local.get $mode) (i32.const 13))
      (then (return (i32.const 1))))
    (call $answer)
    (i32.const 0))
)
