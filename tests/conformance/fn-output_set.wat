;; SPEC [R-fn-output_set] [R-fn-args] (output_set), [R-call-no-output], [R-call-ended] (an
;; output_set over 64 KiB ends the call).
;;
;; A probe with two pages (131,072 bytes) of memory, called through `Plugin::call`. The length
;; of the input selects the case:
;;   0  records what each call of the error sequence below returned (one little-endian i32
;;      word each) and sets that record as the output;
;;   1  makes the same calls and leaves the output as they left it: "keep" if every failing
;;      call left it unchanged;
;;   2  sets "second", then "first": the output is "first";
;;   3  sets "keep", then an empty range at the end of memory: the output is empty;
;;   4  only a failing output_set (ptr -1): no output is set;
;;   5  sets exactly 65,536 bytes from 0x1000;
;;   6  output_set(-1, 65,537)           (length over 64 KiB, negative pointer)
;;   7  output_set(0, 65,537)            (length over 64 KiB, range inside memory)
;;   8  output_set(200,000, 65,537)      (length over 64 KiB, range past the end)
;;   9  output_set(0, 2,147,483,647)
;;  10  sets "keep", then output_set(0, 65,537).
;; Every case returns status 0 unless the call ended.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0x1000) "keep")
  (data (i32.const 0x1010) "first")
  (data (i32.const 0x1020) "second")

  (global $at (mut i32) (i32.const 0))

  (func (export "zhtp_abi_v1"))

  (func $rec (param $v i32)
    (i32.store (global.get $at) (local.get $v))
    (global.set $at (i32.add (global.get $at) (i32.const 4))))

  (func (export "pricing_quote") (result i32)
    (local $case i32)
    (global.set $at (i32.const 0))
    (local.set $case (call $input_len))

    (if (i32.le_u (local.get $case) (i32.const 1))
      (then
        (call $rec (call $output_set (i32.const 0x1000) (i32.const 4)))           ;; "keep"
        (call $rec (call $output_set (i32.const -1) (i32.const 4)))               ;; ptr < 0
        (call $rec (call $output_set (i32.const 0x1000) (i32.const -1)))          ;; len < 0
        (call $rec (call $output_set (i32.const -1) (i32.const -1)))              ;; both
        (call $rec (call $output_set (i32.const 0x1000) (i32.const 0x80000000)))  ;; len = i32::MIN
        (call $rec (call $output_set (i32.const 131069) (i32.const 4)))           ;; past the end
        (call $rec (call $output_set (i32.const 131073) (i32.const 0)))           ;; empty, past the end
        (call $rec (call $output_set (i32.const -1) (i32.const 0)))               ;; ptr < 0, len 0
        (if (i32.eqz (local.get $case))
          (then (drop (call $output_set (i32.const 0) (global.get $at)))))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 2))
      (then
        (drop (call $output_set (i32.const 0x1020) (i32.const 6)))
        (drop (call $output_set (i32.const 0x1010) (i32.const 5)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 3))
      (then
        (drop (call $output_set (i32.const 0x1000) (i32.const 4)))
        (drop (call $output_set (i32.const 131072) (i32.const 0)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 4))
      (then
        (drop (call $output_set (i32.const -1) (i32.const 4)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 5))
      (then
        (drop (call $output_set (i32.const 0x1000) (i32.const 65536)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 6))
      (then
        (drop (call $output_set (i32.const -1) (i32.const 65537)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 7))
      (then
        (drop (call $output_set (i32.const 0) (i32.const 65537)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 8))
      (then
        (drop (call $output_set (i32.const 200000) (i32.const 65537)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 9))
      (then
        (drop (call $output_set (i32.const 0) (i32.const 0x7fffffff)))
        (return (i32.const 0))))

    (if (i32.eq (local.get $case) (i32.const 10))
      (then
        (drop (call $output_set (i32.const 0x1000) (i32.const 4)))
        (drop (call $output_set (i32.const 0) (i32.const 65537)))
        (return (i32.const 0))))

    (unreachable))
)
