;; SPEC [R-fn-input_len] [R-fn-input_read] [R-fn-input_read-offset0] [R-fn-args] (input_read),
;; [R-status-reserved].
;;
;; A probe, called through `Plugin::call` with any input. It makes a fixed sequence of
;; `input_len` / `input_read` calls and records, in order, what each returned (one i32 word) and,
;; after some calls, the bytes of memory the call may have touched (one word per byte). The
;; record is its output, returned with status 0: a sequence of little-endian i32 words.
;;
;; Memory (one page, 65,536 bytes): the record at 0x0000; buffers at 0x1000..0x5000 and
;; 65,528..65,536, re-initialised at every entry: '.' everywhere, "ZZ" in the last two bytes.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; Where the next word of the record goes.
  (global $at (mut i32) (i32.const 0))

  (func (export "zhtp_abi_v1"))

  ;; Appends one word to the record.
  (func $rec (param $v i32)
    (i32.store (global.get $at) (local.get $v))
    (global.set $at (i32.add (global.get $at) (i32.const 4))))

  ;; Appends memory[$p .. $p+$n), one word per byte.
  (func $rec_bytes (param $p i32) (param $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (call $rec (i32.load8_u (local.get $p)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))

  (func (export "pricing_quote") (result i32)
    (global.set $at (i32.const 0))
    (memory.fill (i32.const 0x1000) (i32.const 0x2e) (i32.const 0x4000))
    (memory.fill (i32.const 65528) (i32.const 0x2e) (i32.const 6))
    (i32.store16 (i32.const 65534) (i32.const 0x5a5a))

    (call $rec (call $input_len))                                          ;; 1
    (call $rec (call $input_read (i32.const 0x1000) (i32.const -1)))      ;; 2 len < 0
    (call $rec (call $input_read (i32.const -1) (i32.const -1)))          ;; 3 len < 0, ptr < 0
    (call $rec (call $input_read (i32.const 65536) (i32.const -1)))       ;; 4 len < 0, ptr at the end
    (call $rec (call $input_read (i32.const -1) (i32.const 4)))           ;; 5 ptr < 0
    (call $rec (call $input_read (i32.const -1) (i32.const 0)))           ;; 6 ptr < 0, len 0
    (call $rec (call $input_read (i32.const 65534) (i32.const 4)))        ;; 7 ptr + n past the end?
    (call $rec_bytes (i32.const 65534) (i32.const 2))
    (call $rec (call $input_read (i32.const 65536) (i32.const 1)))        ;; 8 ptr = memory size
    (call $rec (call $input_read (i32.const 0x7fffffff) (i32.const 1)))   ;; 9 ptr far past the end
    (call $rec (call $input_read (i32.const 0x1000) (i32.const 0)))       ;; 10 len 0
    (call $rec_bytes (i32.const 0x1000) (i32.const 1))
    (call $rec (call $input_read (i32.const 65536) (i32.const 0)))        ;; 11 empty range at the end
    (call $rec (call $input_read (i32.const 0x2000) (i32.const 100)))     ;; 12 len > input_len
    (call $rec_bytes (i32.const 0x2000) (i32.const 8))
    (call $rec (call $input_read (i32.const 65530) (i32.const 100)))      ;; 13 only n bytes must fit
    (call $rec_bytes (i32.const 65530) (i32.const 6))
    (call $rec (call $input_read (i32.const 0x3000) (i32.const 2)))       ;; 14 first 2 bytes
    (call $rec (call $input_read (i32.const 0x3010) (i32.const 4)))       ;; 15 from byte 0 again
    (call $rec_bytes (i32.const 0x3000) (i32.const 3))
    (call $rec_bytes (i32.const 0x3010) (i32.const 5))
    (call $rec (call $input_len))                                          ;; 16 unchanged

    (drop (call $output_set (i32.const 0) (global.get $at)))
    (i32.const 0))
)
