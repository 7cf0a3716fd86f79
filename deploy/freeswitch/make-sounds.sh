#!/bin/bash
# Generate the prompts and the music on hold that fs-conf and the demo configuration
# reference, for a FreeSWITCH built from source (which ships no sounds): spoken by
# espeak-ng (Vietnamese first, then English, as a Vietnamese hotline does), converted by
# sox to 8 kHz mono 16-bit WAV. Nothing here is committed: the files land in the switch's
# sounds folder under var/.
#
#   deploy/freeswitch/make-sounds.sh [SOUNDS_DIR]
#
# SOUNDS_DIR: default TONGDAI_FS_SOUNDS_DIR, else PREFIX/share/freeswitch/sounds with
# PREFIX = TONGDAI_FS_PREFIX or var/freeswitch (FreeSWITCH's $${sounds_dir} there).
# Idempotent: an existing file is kept (FORCE=1 regenerates).
#
# What it writes (relative to SOUNDS_DIR):
#   music/8000/tongdai-moh-{1,2}.wav          local_stream://moh (autoload_configs/local_stream.conf.xml)
#   tongdai/common/invalid_entry.wav          $${tongdai_sounds_dir} = SOUNDS_DIR/tongdai
#   tongdai/acme/{ivr_main,ivr_support,closed,all_lines_busy}.wav
#   en/us/callie/ivr/{demo_main,demo_language,ivr-that_was_an_invalid_entry}.wav
#                                             the demo's greetings (relative to sound_prefix)
#   en/us/callie/voicemail/vm-*.wav           every prompt of the vanilla voicemail phrases
#   en/us/callie/{ascii,digits}/*.wav         spelled ids and numbers
#   en/us/callie/tongdai/ewt/{vi,en}/...      position and estimated-wait announcements
#   en/us/callie/tongdai/callback/{vi,en}/... the callback's questions and its digits
set -euo pipefail

die() { echo "make-sounds: $*" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
prefix=${TONGDAI_FS_PREFIX:-$repo/var/freeswitch}
sounds=${1:-${TONGDAI_FS_SOUNDS_DIR:-$prefix/share/freeswitch/sounds}}
command -v espeak-ng >/dev/null || die "espeak-ng is missing (apt-get install espeak-ng)"
command -v sox >/dev/null || die "sox is missing (apt-get install sox)"
mkdir -p "$sounds"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
made=0

# speak FILE VI_TEXT EN_TEXT: Vietnamese, a short pause, English (either may be empty).
speak() {
    local out=$sounds/$1 parts=()
    [ -s "$out" ] && [ "${FORCE:-0}" != 1 ] && return
    mkdir -p "$(dirname "$out")"
    if [ -n "$2" ]; then
        espeak-ng -v vi -s 150 -w "$tmp/vi.wav" "$2"
        sox "$tmp/vi.wav" -r 8000 -c 1 -b 16 "$tmp/vi8.wav"
        parts+=("$tmp/vi8.wav")
    fi
    if [ -n "$3" ]; then
        [ ${#parts[@]} -gt 0 ] && { sox -n -r 8000 -c 1 -b 16 "$tmp/gap.wav" trim 0 0.4; parts+=("$tmp/gap.wav"); }
        espeak-ng -v en-us -s 160 -w "$tmp/en.wav" "$3"
        sox "$tmp/en.wav" -r 8000 -c 1 -b 16 "$tmp/en8.wav"
        parts+=("$tmp/en8.wav")
    fi
    if [ ${#parts[@]} -eq 1 ]; then cp "${parts[0]}" "$out.tmp"; else sox "${parts[@]}" -t wav "$out.tmp"; fi
    mv "$out.tmp" "$out"
    made=$((made + 1))
}

# Music on hold: two calm synthesized pieces (chords with a slow fade), 30 s each.
moh() {  # FILE NOTES...
    local out=$sounds/music/8000/$1; shift
    [ -s "$out" ] && [ "${FORCE:-0}" != 1 ] && return
    mkdir -p "$(dirname "$out")"
    local chords=() i=0
    for chord in "$@"; do
        # shellcheck disable=SC2086  # a chord is a word list of notes
        sox -n -r 8000 -c 1 -b 16 "$tmp/c$i.wav" synth 3.75 $(for n in $chord; do printf 'pl %s ' "$n"; done) \
            remix - fade q 0.3 3.75 0.6 gain -12
        chords+=("$tmp/c$i.wav"); i=$((i + 1))
    done
    sox "${chords[@]}" "${chords[@]}" "$out.tmp.wav"
    mv "$out.tmp.wav" "$out"
    made=$((made + 1))
}
moh tongdai-moh-1.wav "C4 E4 G4" "A3 C4 E4" "F3 A3 C4" "G3 B3 D4"
moh tongdai-moh-2.wav "D4 F#4 A4" "B3 D4 F#4" "G3 B3 D4" "A3 C#4 E4"

speak tongdai/common/invalid_entry.wav "Phím bạn chọn không hợp lệ." "That was an invalid entry."
speak tongdai/acme/ivr_main.wav \
    "Xin chào quý khách. Nhấn phím 1 để gặp bộ phận kinh doanh, phím 2 để được hỗ trợ kỹ thuật, phím 3 cho thanh toán, phím 0 để gặp tổng đài viên." \
    "Welcome. Press 1 for sales, 2 for support, 3 for billing, 0 for the operator."
speak tongdai/acme/ivr_support.wav \
    "Nhấn phím 1 cho tiếng Việt, phím 2 cho tiếng Anh." "Press 1 for Vietnamese, 2 for English."
speak tongdai/acme/closed.wav \
    "Tổng đài hiện đã ngoài giờ làm việc. Vui lòng để lại lời nhắn." \
    "We are closed now. Please leave a message."
speak tongdai/acme/all_lines_busy.wav \
    "Tất cả các đường dây đều bận. Vui lòng gọi lại sau." "All lines are busy. Please call again later."

callie=en/us/callie
speak $callie/ivr/demo_main.wav \
    "Xin chào quý khách. Nhấn phím 1 để gặp bộ phận kinh doanh, phím 2 để được hỗ trợ, phím 3 cho thanh toán, phím 0 để gặp tổng đài viên." \
    "Welcome. Press 1 for sales, 2 for support, 3 for billing, 0 for the operator."
speak $callie/ivr/demo_language.wav \
    "Nhấn phím 1 cho tiếng Việt, phím 2 cho tiếng Anh, phím 9 để trở lại." \
    "Press 1 for Vietnamese, 2 for English, 9 to go back."
speak $callie/ivr/ivr-that_was_an_invalid_entry.wav "Phím bạn chọn không hợp lệ." "That was an invalid entry."
speak $callie/voicemail/vm-goodbye.wav "Xin cảm ơn. Tạm biệt." "Thank you. Goodbye."
speak $callie/voicemail/vm-person.wav "" "The person at extension"
speak $callie/voicemail/vm-not_available.wav "" "is not available."
speak $callie/voicemail/vm-record_message.wav "Vui lòng để lại lời nhắn sau tiếng bíp." "Please leave your message after the tone."
speak $callie/voicemail/vm-press.wav "" "press"
speak $callie/voicemail/vm-to_exit.wav "" "to exit"
speak $callie/voicemail/vm-message_saved.wav "Lời nhắn đã được lưu." "Your message has been saved."
speak $callie/voicemail/vm-enter_pass.wav "" "Please enter your password, followed by pound."
speak $callie/voicemail/vm-fail_auth.wav "" "Login incorrect."
speak $callie/voicemail/vm-you_have.wav "" "You have"
speak $callie/voicemail/vm-messages.wav "" "messages"
for d in 0 1 2 3 4 5 6 7 8 9; do
    speak $callie/digits/$d.wav "" "$d"
done
# Every other file the vanilla voicemail phrases (lang/en/vm/sounds.xml) play, in English
# from its name ("vm-not_available" -> "not available"), and the ones they name by pattern
# (vm-$1: new, saved, urgent, ...): a missing prompt ends the phrase, and mod_voicemail with
# it (the caller hears the goodbye instead of the tone).
for n in abort advanced change_password choose_greeting choose_greeting_choose \
         choose_greeting_fail continue delete_recording enter_id followed_by \
         forward_add_intro forward_enter_ext forward_to_email greeting hello listen_new \
         listen_saved listen_to_recording mailbox_full main_menu mark-urgent message \
         message_from message_number password_has_been_changed password_not_valid \
         record_greeting record_name1 record_name2 rerecord return_call save_recording \
         selected send_message_now that_was_an_invalid_ext to_forward to_record_greeting \
         too-small new saved urgent deleted emailed marked-urgent received from \
         in_folder listen_to_new_messages; do
    speak $callie/voicemail/vm-$n.wav "" "$(printf '%s' "$n" | tr '_-' '  ')"
done
speak $callie/ivr/ivr-anonymous_caller.wav "" "an anonymous caller"
speak $callie/1.wav "" "1"
speak $callie/2.wav "" "2"
# ascii/<code>.wav: a spelled name or mailbox id (say ... name_spelled), letter by letter.
for c in 0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z; do
    speak $callie/ascii/$(printf '%d' "'$c").wav "" "$c"
done
speak $callie/ascii/95.wav "" "underscore"
speak $callie/ascii/45.wav "" "dash"
speak $callie/ascii/46.wav "" "dot"
speak $callie/ascii/64.wav "" "at"
# Position and estimated-wait announcements (routing/announce.py, PROMPT_FILES): short
# phrases and the numbers 1-60, each language alone (the router strings them together,
# Vietnamese first, in one file_string://).
ewt=$callie/tongdai/ewt
speak $ewt/vi/position.wav "Quý khách đang ở vị trí số" ""
speak $ewt/vi/wait.wav "Thời gian chờ dự kiến khoảng" ""
speak $ewt/vi/minutes.wav "phút" ""
speak $ewt/vi/under_a_minute.wav "Thời gian chờ dự kiến dưới một phút" ""
speak $ewt/vi/more_than.wav "hơn" ""
speak $ewt/en/position.wav "" "You are number"
speak $ewt/en/wait.wav "" "Your estimated wait is about"
speak $ewt/en/minutes.wav "" "minutes"
speak $ewt/en/under_a_minute.wav "" "Your estimated wait is under a minute"
speak $ewt/en/more_than.wav "" "more than"
for n in $(seq 1 60); do
    speak $ewt/vi/n/$n.wav "$n" ""
    speak $ewt/en/n/$n.wav "" "$n"
done
# Callbacks that keep the caller's place (routing/callbacks.py, PROMPT_FILES).
cb=$callie/tongdai/callback
speak $cb/vi/offer.wav "Để được gọi lại mà vẫn giữ vị trí, vui lòng nhấn phím 1." ""
speak $cb/en/offer.wav "" "To be called back and keep your place, press 1."
speak $cb/vi/confirm_number.wav "Chúng tôi sẽ gọi lại cho quý khách theo số" ""
speak $cb/en/confirm_number.wav "" "We will call you back at"
speak $cb/vi/confirm_keys.wav "Nhấn phím 1 để xác nhận, phím 2 để hủy." ""
speak $cb/en/confirm_keys.wav "" "Press 1 to confirm, 2 to cancel."
speak $cb/vi/confirmed.wav "Cảm ơn quý khách. Chúng tôi sẽ gọi lại khi đến lượt quý khách." ""
speak $cb/en/confirmed.wav "" "Thank you. We will call you back when it is your turn."
speak $cb/vi/cancelled.wav "Đã hủy yêu cầu gọi lại." ""
speak $cb/en/cancelled.wav "" "Your callback is cancelled."
for d in 0 1 2 3 4 5 6 7 8 9; do
    speak $cb/vi/d/$d.wav "$d" ""
    speak $cb/en/d/$d.wav "" "$d"
done
echo "make-sounds: $made file(s) written under $sounds"
