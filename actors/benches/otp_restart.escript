#!/usr/bin/env escript
%% -*- erlang -*-
%%! +S 1:1 -noshell
%%
%% Restart latency of OTP's supervisor with zero backoff: the Erlang half of restart_latency.rs
%% (beside this file), measuring exactly what the Rust half measures.
%%
%% A one_for_one supervisor with intensity {1000000, 1} supervises one permanent gen_server.
%% The child's init/1 sends {ready, self(), InitTime} to the bench process. Per sample the bench
%% casts `crash`; the child stores erlang:monotonic_time(nanosecond) in an atomics array and
%% exits right after. The bench waits for the replacement's {ready, ...}, calls it with `ping`,
%% and the child replies with the monotonic time at which it handles the ping.
%% Latency = ping handled - crash. Samples are spaced SpacingMs apart, after Warmup unrecorded ones.
%%
%% Usage: otp_restart.escript Warmup Samples SpacingMs
%% Output: lines starting with "#" are information; every other line is one sample, three phases
%% in ns: crash -> replacement's init, init -> bench has its pid, bench has pid -> ping handled.
%% One scheduler (+S 1:1 above) matches the daemon's one tokio scheduler thread. Logging is off, as in the
%% Rust half (no tracing subscriber), so crash and supervisor reports cost no formatting.

-module(otp_restart).
-mode(compile).

-export([main/1, start_child/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

main([Warmup, Samples, Spacing]) ->
    run(list_to_integer(Warmup), list_to_integer(Samples), list_to_integer(Spacing));
main(_) ->
    io:format(standard_error, "usage: otp_restart.escript Warmup Samples SpacingMs~n", []),
    halt(2).

run(Warmup, Samples, Spacing) ->
    ok = logger:set_primary_config(level, none),
    Bench = self(),
    Crash = atomics:new(1, [{signed, true}]),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, Bench, Crash}),
    unlink(Sup),
    {First, _} = wait_ready(),
    {_, Phases} = lists:foldl(
        fun(I, {Child, Acc}) ->
            {Phase, Next} = sample(Child, Crash),
            receive after Spacing -> ok end,
            case I > Warmup of
                true -> {Next, [Phase | Acc]};
                false -> {Next, Acc}
            end
        end,
        {First, []},
        lists:seq(1, Warmup + Samples)),
    io:format("# otp ~s erts ~s schedulers ~p~n",
              [erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online)]),
    lists:foreach(fun({A, B, C}) -> io:format("~b ~b ~b~n", [A, B, C]) end,
                  lists:reverse(Phases)),
    exit(Sup, shutdown),
    halt(0).

sample(Child, Crash) ->
    gen_server:cast(Child, crash),
    {Next, Init} = wait_ready(),
    Got = erlang:monotonic_time(nanosecond),
    Handled = gen_server:call(Next, ping),
    Crashed = atomics:get(Crash, 1),
    {{Init - Crashed, Got - Init, Handled - Got}, Next}.

wait_ready() ->
    receive
        {ready, Pid, Init} -> {Pid, Init}
    after 5000 ->
        io:format(standard_error, "no replacement child within 5 s~n", []),
        halt(1)
    end.

start_child(Bench, Crash) ->
    gen_server:start_link(?MODULE, {child, Bench, Crash}, []).

%% The supervisor and the gen_server child share this module and so init/1 (hence no
%% -behaviour attributes, which would warn); the argument tells them apart.
init({sup, Bench, Crash}) ->
    Flags = #{strategy => one_for_one, intensity => 1000000, period => 1},
    Child = #{id => child,
              start => {?MODULE, start_child, [Bench, Crash]},
              restart => permanent,
              shutdown => 5000,
              type => worker},
    {ok, {Flags, [Child]}};
init({child, Bench, Crash}) ->
    Bench ! {ready, self(), erlang:monotonic_time(nanosecond)},
    {ok, Crash}.

handle_call(ping, _From, Crash) ->
    {reply, erlang:monotonic_time(nanosecond), Crash}.

handle_cast(crash, Crash) ->
    atomics:put(Crash, 1, erlang:monotonic_time(nanosecond)),
    exit(crash).

handle_info(_Msg, Crash) ->
    {noreply, Crash}.
