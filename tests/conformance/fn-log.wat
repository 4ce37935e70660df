;; SPEC [R-fn-log] [R-fn-args] (log), [R-limit-io] (1 KiB per line, 16 lines per call),
;; [R-state-persist] (the log quota is per call).
;;
;; A probe, called through `Plugin::call`: it makes the sequence of `log` calls below and
;; records what each returned, one little-endian i32 word each; the record is its output
;; (status 0). Memory is one page (65,536 bytes); "hello" is at 16, the record at 0x1000.
(module
  (import "zhtp:env/v1" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")

  (global $at (mut i32) (i32.const 0x1000))

  (func (export "zhtp_abi_v1"))

  (func $rec (param $v i32)
    (i32.store (global.get $at) (local.get $v))
    (global.set $at (i32.add (global.get $at) (i32.const 4))))

  (func (export "pricing_quote") (result i32)
    (global.set $at (i32.const 0x1000))
    ;; Not counted against the quota: unknown levels.
    (call $rec (call $log (i32.const 4) (i32.const 16) (i32.const 5)))         ;; 1
    (call $rec (call $log (i32.const -1) (i32.const 16) (i32.const 5)))        ;; 2
    ;; Counted: lines 1 to 11.
    (call $rec (call $log (i32.const 0) (i32.const 16) (i32.const 5)))         ;; 3  debug
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 4  info
    (call $rec (call $log (i32.const 2) (i32.const 16) (i32.const 5)))         ;; 5  warn
    (call $rec (call $log (i32.const 3) (i32.const 16) (i32.const 5)))         ;; 6  error
    (call $rec (call $log (i32.const 1) (i32.const -1) (i32.const 5)))         ;; 7  ptr < 0
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const -1)))        ;; 8  len < 0
    (call $rec (call $log (i32.const 1) (i32.const 65535) (i32.const 2)))      ;; 9  past the end
    (call $rec (call $log (i32.const 1) (i32.const 65536) (i32.const 0)))      ;; 10 empty, at the end
    (call $rec (call $log (i32.const 1) (i32.const 64512) (i32.const 5000)))   ;; 11 reads 1,024 bytes: fits
    (call $rec (call $log (i32.const 1) (i32.const 64513) (i32.const 5000)))   ;; 12 1,024 bytes do not fit
    (call $rec (call $log (i32.const 1) (i32.const 65537) (i32.const 0)))      ;; 13 empty, past the end
    ;; Counted: lines 12 to 16.
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 14
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 15
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 16
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 17
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 18
    ;; Quota reached.
    (call $rec (call $log (i32.const 1) (i32.const 16) (i32.const 5)))         ;; 19 17th line
    (call $rec (call $log (i32.const 1) (i32.const -1) (i32.const 5)))         ;; 20 quota before pointer
    (call $rec (call $log (i32.const 9) (i32.const 16) (i32.const 5)))         ;; 21 level before quota
    (call $rec (call $log (i32.const 0) (i32.const 16) (i32.const 5)))         ;; 22
    (drop (call $output_set (i32.const 0x1000) (i32.sub (global.get $at) (i32.const 0x1000))))
    (i32.const 0))
)
