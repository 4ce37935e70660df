;; SPEC [R-check-success] [R-check-refusal] [R-req-refuse].
;;
;; A pricing guest that refuses (status 1, reason "no archive") every request for the Archive
;; tier and answers every other with the 7-byte Quote of section 8.5 (117 µZHTP). It finds the
;; tier 6 bytes before the end of the request, which holds for the self-check's requests (their
;; utilization_bp, 5,000, takes 2 bytes after tier, quality, replication and urgency).
(module
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\64\0a\05\02\0f\75\00")
  (data (i32.const 16) "no archive")

  (func (export "zhtp_abi_v1"))

  (func (export "pricing_quote") (result i32)
    (local $n i32)
    (local.set $n (call $input_read (i32.const 0x100) (i32.const 64)))
    (if (i32.eq (i32.load8_u (i32.add (i32.const 0xfa) (local.get $n))) (i32.const 3))
      (then
        (drop (call $output_set (i32.const 16) (i32.const 10)))
        (return (i32.const 1))))
    (drop (call $output_set (i32.const 0) (i32.const 7)))
    (i32.const 0))
)
