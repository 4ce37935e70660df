;; SPEC [R-req-canonical] [R-req-ranges] [R-msg-request] [R-msg-tables] [R-msg-golden-request]
;; [R-enc-u8] [R-enc-bool] [R-enc-varint] [R-enc-struct] [R-enc-enum] [R-enc-trailing].
;;
;; Shows the host's input byte for byte: refuses every call (status 1) with the input, up to
;; 256 bytes, written as lower-case hex (two ASCII characters per byte), so that the refusal
;; reason carries the exact bytes.
(module
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "0123456789abcdef")

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (local $n i32) (local $i i32) (local $b i32) (local $out i32)
    (local.set $n (call $input_read (i32.const 0x100) (i32.const 256)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (i32.const 0x100) (local.get $i))))
        (local.set $out (i32.add (i32.const 0x400) (i32.shl (local.get $i) (i32.const 1))))
        (i32.store8 (local.get $out)
          (i32.load8_u (i32.shr_u (local.get $b) (i32.const 4))))
        (i32.store8 (i32.add (local.get $out) (i32.const 1))
          (i32.load8_u (i32.and (local.get $b) (i32.const 15))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (drop (call $output_set (i32.const 0x400) (i32.shl (local.get $n) (i32.const 1))))
    (i32.const 1))
)
