;; SPEC [R-shape-start] [R-load-no-instantiate] [R-state-persist].
;;
;; A start function that counts how often it ran and records what each host function returns
;; when called from it (outside any call, before the host has attached the guest's memory).
;; The entry, called through `Plugin::call`, counts its calls and outputs, as little-endian i32
;; words: the start count, the call count, then the ten results recorded by the start function.
(module
  (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
  (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  (global $starts (mut i32) (i32.const 0))
  (global $calls (mut i32) (i32.const 0))
  (global $at (mut i32) (i32.const 0x108))

  (func (export "zhtp_abi_v1"))

  (func $rec (param $v i32)
    (i32.store (global.get $at) (local.get $v))
    (global.set $at (i32.add (global.get $at) (i32.const 4))))

  (func $start
    (global.set $starts (i32.add (global.get $starts) (i32.const 1)))
    (call $rec (call $input_len))                                         ;; 0
    (call $rec (call $input_read (i32.const 0) (i32.const 4)))           ;; -1
    (call $rec (call $input_read (i32.const 0) (i32.const 0)))           ;; -1
    (call $rec (call $input_read (i32.const -1) (i32.const 4)))          ;; -4
    (call $rec (call $input_read (i32.const 0) (i32.const -1)))          ;; -4
    (call $rec (call $output_set (i32.const 0) (i32.const 4)))           ;; -1
    (call $rec (call $output_set (i32.const -1) (i32.const 4)))          ;; -4
    (call $rec (call $log (i32.const 1) (i32.const 0) (i32.const 4)))    ;; -1
    (call $rec (call $log (i32.const 7) (i32.const 0) (i32.const 4)))    ;; -4
    (call $rec (call $log (i32.const 1) (i32.const -1) (i32.const 4))))  ;; -4
  (start $start)

  (func (export "pricing_quote") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 0x100) (global.get $starts))
    (i32.store (i32.const 0x104) (global.get $calls))
    (drop (call $output_set (i32.const 0x100) (i32.const 48)))
    (i32.const 0))
)
