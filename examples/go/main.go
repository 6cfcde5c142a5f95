// A flowrun client in Go, with the stubs buf.gen.yaml generates into gen/. It creates a
// flow and a run, drives the run PENDING -> RUNNING -> COMPLETED through SetFlowRunState,
// then makes two calls fail and decodes their rich error details (google.rpc.Status:
// ErrorInfo, BadRequest, RetryInfo), switching on flowrun.v1.ErrorReason.
//
//	go generate && go mod tidy && go run . 127.0.0.1:50051
//
// It prints one JSON object per step (the same steps as examples/node) and exits 1 if
// anything is not as expected.
package main

//go:generate buf generate --template buf.gen.yaml

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	flowrunv1 "github.com/flowrun/flowrun/gen/go/flowrun/v1"
)

func step(name string, fields map[string]any) {
	fields["step"] = name
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

// failure decodes the status of a call that must fail.
func failure(err error) (map[string]any, error) {
	if err == nil {
		return nil, errors.New("the call was expected to fail")
	}
	st := status.Convert(err)
	result := map[string]any{"code": st.Code().String()}
	var decoded []map[string]any
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			result["reason"] = d.GetReason()
			// flowrun.v1.ErrorReason is the list of reasons to switch on, in every language.
			_, known := flowrunv1.ErrorReason_value["ERROR_REASON_"+d.GetReason()]
			result["known_reason"] = known
			decoded = append(decoded, map[string]any{
				"type": "google.rpc.ErrorInfo", "reason": d.GetReason(), "domain": d.GetDomain(), "metadata": d.GetMetadata(),
			})
		case *errdetails.BadRequest:
			var fields []string
			for _, violation := range d.GetFieldViolations() {
				fields = append(fields, violation.GetField())
			}
			decoded = append(decoded, map[string]any{"type": "google.rpc.BadRequest", "fields": fields})
		case *errdetails.RetryInfo:
			decoded = append(decoded, map[string]any{"type": "google.rpc.RetryInfo", "delay": d.GetRetryDelay().AsDuration().String()})
		case error:
			return nil, fmt.Errorf("undecodable detail: %w", d)
		}
	}
	result["details"] = decoded
	return result, nil
}

func run(target, suffix string) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	flows := flowrunv1.NewFlowServiceClient(conn)
	runs := flowrunv1.NewFlowRunServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := "go-example-" + suffix
	created, err := flows.CreateFlow(ctx, &flowrunv1.CreateFlowRequest{Name: name, Tags: []string{"example"}})
	if err != nil {
		return err
	}
	step("create_flow", map[string]any{"flow_id": created.GetFlow().GetId(), "created": created.GetCreated()})
	again, err := flows.CreateFlow(ctx, &flowrunv1.CreateFlowRequest{Name: name})
	if err != nil {
		return err
	}
	sameID := again.GetFlow().GetId() == created.GetFlow().GetId()
	step("create_flow_again", map[string]any{"same_id": sameID, "created": again.GetCreated()})

	made, err := runs.CreateFlowRun(ctx, &flowrunv1.CreateFlowRunRequest{FlowId: created.GetFlow().GetId()})
	if err != nil {
		return err
	}
	runID := made.GetFlowRun().GetId()
	step("create_flow_run", map[string]any{"flow_run_id": runID, "state": made.GetFlowRun().GetState().GetType().String()})

	for _, proposed := range []flowrunv1.StateType{flowrunv1.StateType_STATE_TYPE_RUNNING, flowrunv1.StateType_STATE_TYPE_COMPLETED} {
		outcome, err := runs.SetFlowRunState(ctx, &flowrunv1.SetFlowRunStateRequest{
			FlowRunId: runID,
			State:     &flowrunv1.StateCreate{Type: proposed},
		})
		if err != nil {
			return err
		}
		step("set_flow_run_state", map[string]any{
			"proposed": proposed.String(), "status": outcome.GetStatus().String(), "state": outcome.GetState().GetType().String(),
		})
		if outcome.GetStatus() != flowrunv1.SetStateStatus_SET_STATE_STATUS_ACCEPT {
			return fmt.Errorf("%s was not accepted: %s", proposed, outcome.GetStatus())
		}
	}
	done, err := runs.GetFlowRun(ctx, &flowrunv1.GetFlowRunRequest{FlowRunId: runID})
	if err != nil {
		return err
	}
	state := done.GetFlowRun().GetState()
	step("get_flow_run", map[string]any{"state": state.GetType().String(), "state_name": state.GetName()})

	_, err = runs.GetFlowRun(ctx, &flowrunv1.GetFlowRunRequest{FlowRunId: "not-a-uuid"})
	malformed, err := failure(err)
	if err != nil {
		return err
	}
	step("malformed_id", malformed)
	_, err = runs.GetFlowRun(ctx, &flowrunv1.GetFlowRunRequest{FlowRunId: "00000000-0000-4000-8000-000000000000"})
	missing, err := failure(err)
	if err != nil {
		return err
	}
	step("missing_run", missing)

	if !sameID || again.GetCreated() || state.GetType() != flowrunv1.StateType_STATE_TYPE_COMPLETED {
		return errors.New("unexpected outcome")
	}
	return nil
}

func main() {
	target := os.Getenv("FLOWRUN_TARGET")
	if len(os.Args) > 1 {
		target = os.Args[1]
	}
	if target == "" {
		target = "127.0.0.1:50051"
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 10)
	if len(os.Args) > 2 {
		suffix = os.Args[2]
	}
	if err := run(target, suffix); err != nil {
		fmt.Fprintln(os.Stderr, "example failed:", err)
		os.Exit(1)
	}
}
